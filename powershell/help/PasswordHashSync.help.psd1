# The written help of the PasswordHashSync cmdlets. scripts/gen-powershell-help.ps1 merges it
# with the cmdlets' metadata into en-US/PasswordHashSync.dll-Help.xml (Get-Help).
# Literal data only. Paragraphs are separated by an empty line; Defaults are shown as each
# parameter's default value.
@{
    'ConvertTo-NTHash' = @{
        Synopsis    = 'Computes the NT hash (MD4 of UTF-16LE) of a password.'
        Description = 'Returns the upper-case hexadecimal NT hash that Active Directory stores as unicodePwd.

The password reaches the phsync library as UTF-16 straight from the SecureString''s unmanaged copy, which is zeroed and freed right after; it never becomes a managed string.'
        Parameters  = @{ Password = 'The password, as a SecureString (for example from Read-Host -AsSecureString). Accepted from the pipeline, and by property name.' }
        Examples    = @(
            @{ Code = 'ConvertTo-NTHash -Password (Read-Host -AsSecureString ''Password'')'; Remarks = 'Prompts for a password and prints its NT hash, for example 92937945B518814341DE3F726500D4FF for Pa$$w0rd.' }
        )
        Related     = @('ConvertTo-PasswordHashSyncDigest', 'Test-PasswordHashSyncDigest')
    }
    'ConvertTo-PasswordHashSyncDigest' = @{
        Defaults    = @{ Iterations = '1000'; Salt = 'random'  }
        Synopsis    = 'Computes the Password Hash Synchronization digest of a password or an NT hash.'
        Description = 'Returns the digest string v1;PPH1_MD4,<salt>,<iterations>,<key>; that Microsoft Entra ID stores for a synchronized password: PBKDF2-HMAC-SHA256 over the upper-case hexadecimal NT hash, byte-exact with Entra Connect.

Without -Salt a fresh random 10-byte salt is used, as Entra Connect does for every sync.'
        Parameters  = @{
            Password   = 'The password as a SecureString; it reaches the library as UTF-16 and never becomes a managed string.'
            NTHash     = 'An NT hash as 32 hexadecimal digits, instead of a password.'
            Salt       = 'The salt as 20 hexadecimal digits (10 bytes). Default: random.'
            Iterations = 'PBKDF2 iterations, 1 to 1000000. Default: 1000, as Entra Connect.'
        }
        Examples    = @(
            @{ Code = 'ConvertTo-PasswordHashSyncDigest -NTHash 92937945B518814341DE3F726500D4FF -Salt 181a3024085fcee2f70e'; Remarks = 'Prints v1;PPH1_MD4,181a3024085fcee2f70e,1000,b39525c3bc72a1136fcf7c8a338e0c14313d0450d1a4c98ef0a6ddada3bc5b0a; (the test vector of the specification).' }
            @{ Code = 'Read-Host -AsSecureString | ConvertTo-PasswordHashSyncDigest'; Remarks = 'The digest of a typed password with a random salt.' }
        )
        Related     = @('ConvertTo-NTHash', 'Test-PasswordHashSyncDigest')
    }
    'Test-PasswordHashSyncDigest' = @{
        Synopsis    = 'Tests whether a password or an NT hash matches a Password Hash Synchronization digest.'
        Description = 'Returns $true when the password (or NT hash) produces the digest''s key with the digest''s salt and iterations, and $false otherwise; the comparison is in constant time.

A malformed digest is an error (PHS_E_MALFORMED_DIGEST, InvalidData), never $true or a silent $false.'
        Parameters  = @{
            Digest   = 'The digest, v1;PPH1_MD4,<salt>,<iterations>,<key>;.'
            Password = 'The password as a SecureString.'
            NTHash   = 'An NT hash as 32 hexadecimal digits, instead of a password.'
        }
        Examples    = @(
            @{ Code = 'Test-PasswordHashSyncDigest -Digest ''v1;PPH1_MD4,181a3024085fcee2f70e,1000,b39525c3bc72a1136fcf7c8a338e0c14313d0450d1a4c98ef0a6ddada3bc5b0a;'' -Password (Read-Host -AsSecureString)'; Remarks = 'Returns True when Pa$$w0rd is typed.' }
        )
        Related     = @('ConvertTo-PasswordHashSyncDigest')
    }
    'Set-CloudPassword' = @{
        Defaults    = @{ Tenant = '$env:PHSYNC_TENANT'; TokenFile = '$env:PHSYNC_TOKEN_FILE'; CaFile = '$env:PHSYNC_CA_FILE'  }
        Synopsis    = 'Resets a cloud user''s password as an administrator.'
        Description = 'Sets the password of a user in the cloud tenant under the cloud password policy (length, character classes, not containing the user name). The reset overrides a synchronized password until the next on-premises change.

Policy violations are SecurityError records (PHS_E_PASSWORD_POLICY) naming what failed; an unknown user is ObjectNotFound (PHS_E_NOT_FOUND). Supports -WhatIf and -Confirm, and takes UserPrincipalName (or UPN, UserName) and Password from the pipeline by property name.'
        Parameters  = @{
            UserPrincipalName              = 'The user''s UPN. Also binds from properties named UPN or UserName.'
            Password                       = 'The new password as a SecureString.'
            ForceChangePasswordNextSignIn  = 'The user must change the password at the next sign-in.'
            Tenant                         = 'The tenant: a tenant file, a postgres:// URL, or the https:// URL of a tenant service (phsync cloud serve). Default: $env:PHSYNC_TENANT.'
            TokenFile                      = 'For a tenant service: the file holding an API token (mode 0600). Default: $env:PHSYNC_TOKEN_FILE.'
            CaFile                         = 'For a tenant service: PEM CA certificates to trust instead of the system''s roots. Default: $env:PHSYNC_CA_FILE.'
        }
        Examples    = @(
            @{ Code = 'Set-CloudPassword -UserPrincipalName alice@contoso.com -Password (Read-Host -AsSecureString) -ForceChangePasswordNextSignIn -Tenant ./tenant.db'; Remarks = 'Resets Alice''s password in a tenant file; she must change it at her next sign-in.' }
            @{ Code = 'Set-CloudPassword alice@contoso.com (Read-Host -AsSecureString) -Tenant https://tenant.contoso.com:8443 -TokenFile ~/.phsync/admin.token -CaFile ./contoso-ca.pem'; Remarks = 'The same against a tenant service, with an administrator token.' }
            @{ Code = 'Import-Csv resets.csv | Select-Object UPN, @{ n = ''Password''; e = { ConvertTo-SecureString $_.Initial -AsPlainText -Force } } | Set-CloudPassword -WhatIf'; Remarks = 'Shows which users a CSV file would reset, without changing anything.' }
        )
        Related     = @('Test-CloudSignIn', 'Get-CloudUser', 'Revoke-CloudSession')
    }
    'Test-CloudSignIn' = @{
        Defaults    = @{ Tenant = '$env:PHSYNC_TENANT'; TokenFile = '$env:PHSYNC_TOKEN_FILE'; CaFile = '$env:PHSYNC_CA_FILE'  }
        Synopsis    = 'Tests whether a user can sign in to the cloud tenant with a password.'
        Description = 'Performs a sign-in against the tenant and returns its outcome: success, or why it was refused (invalid_credentials, must_change_password, password_expired, account_disabled, locked_out). A refusal is a result, not an error; a wrong password counts toward smart lockout as any sign-in does. The session token is never returned.

A PSCredential (Get-Credential) binds from the pipeline: its UserName is the UPN.'
        Parameters  = @{
            UserPrincipalName = 'The user''s UPN. Also binds from properties named UPN or UserName (a PSCredential).'
            Password          = 'The password as a SecureString.'
            Tenant            = 'The tenant: a tenant file, a postgres:// URL, or the https:// URL of a tenant service. Default: $env:PHSYNC_TENANT.'
            TokenFile         = 'For a tenant service: the file holding an API token (mode 0600). Default: $env:PHSYNC_TOKEN_FILE.'
            CaFile            = 'For a tenant service: PEM CA certificates to trust instead of the system''s roots. Default: $env:PHSYNC_CA_FILE.'
        }
        Examples    = @(
            @{ Code = 'Get-Credential alice@contoso.com | Test-CloudSignIn -Tenant ./tenant.db'; Remarks = 'Prompts for Alice''s password and shows whether the tenant accepts it.' }
            @{ Code = 'Test-CloudSignIn -UserPrincipalName alice@contoso.com -Password (Read-Host -AsSecureString) | Select-Object -ExpandProperty Succeeded'; Remarks = 'True or False.' }
        )
        Related     = @('Set-CloudPassword', 'Invoke-PasswordHashSync')
    }
    'Get-CloudUser' = @{
        Defaults    = @{ Tenant = '$env:PHSYNC_TENANT'; TokenFile = '$env:PHSYNC_TOKEN_FILE'; CaFile = '$env:PHSYNC_CA_FILE'  }
        Synopsis    = 'Gets users of the cloud tenant.'
        Description = 'Returns the tenant''s record of each user: enabled, origin (synced or cloud), source anchor, and where the current password came from, when it changed, whether it must be changed and when it expires, any smart-lockout time, and its risk marks (Risks: leaked_credentials, see Get-CloudUserRisk). It never returns a digest. An unknown user is an ObjectNotFound error (PHS_E_NOT_FOUND).'
        Parameters  = @{
            UserPrincipalName = 'The users'' UPNs. From the pipeline, or by property name (UPN, UserName).'
            Tenant            = 'The tenant: a tenant file, a postgres:// URL, or the https:// URL of a tenant service. Default: $env:PHSYNC_TENANT.'
            TokenFile         = 'For a tenant service: the file holding an API token (mode 0600). Default: $env:PHSYNC_TOKEN_FILE.'
            CaFile            = 'For a tenant service: PEM CA certificates to trust instead of the system''s roots. Default: $env:PHSYNC_CA_FILE.'
        }
        Examples    = @(
            @{ Code = 'Get-CloudUser alice@contoso.com -Tenant ./tenant.db | Format-List'; Remarks = 'Everything the tenant knows about Alice''s account and password, without the digest.' }
        )
        Related     = @('Set-CloudPassword', 'Test-CloudSignIn')
    }
    'Get-CloudUserRisk' = @{
        Defaults    = @{ Tenant = '$env:PHSYNC_TENANT'; TokenFile = '$env:PHSYNC_TOKEN_FILE'; CaFile = '$env:PHSYNC_CA_FILE'  }
        Synopsis    = 'Gets the cloud users marked at risk because their password is leaked.'
        Description = 'Returns a CloudUserRisk for each risk mark: the user, the kind (leaked_credentials: the synchronized password''s NT hash is in the leaked-hash list of the sync engine''s [audit] leaked_hashes, for example Have I Been Pwned''s NTLM list), when it was detected for the current password, and the breach count the list gives (none for a plain list of hashes). Never a hash.

A mark clears when the password changes on-premises to one not in the list, when an administrator resets it (Set-CloudPassword) or the user changes it, or when the list no longer holds it. With [audit] block_leaked_sign_in = true a marked user must change the password at the next sign-in. The same marks are in the Risks property of Get-CloudUser.

Without -UserPrincipalName, every marked user of the tenant; with it, the marks of those users (an unknown user is an ObjectNotFound error, PHS_E_NOT_FOUND). Against a tenant service the token must have the admin role.'
        Parameters  = @{
            UserPrincipalName = 'Only these users'' marks. From the pipeline, or by property name (UPN, UserName), for example from Get-CloudUser.'
            Tenant            = 'The tenant: a tenant file, a postgres:// URL, or the https:// URL of a tenant service. Default: $env:PHSYNC_TENANT.'
            TokenFile         = 'For a tenant service: the file holding an API token (mode 0600). Default: $env:PHSYNC_TOKEN_FILE.'
            CaFile            = 'For a tenant service: PEM CA certificates to trust instead of the system''s roots. Default: $env:PHSYNC_CA_FILE.'
        }
        Examples    = @(
            @{ Code = 'Get-CloudUserRisk -Tenant ./tenant.db'; Remarks = 'Every user whose synchronized password is in the leaked list, with when it was found and how many breaches list it.' }
            @{ Code = 'Get-CloudUserRisk -Tenant ./tenant.db | Set-CloudPassword -Password (Read-Host -AsSecureString) -ForceChangePasswordNextSignIn'; Remarks = 'Resets each leaked user''s password (which clears the mark) and makes them choose a new one at sign-in.' }
        )
        Related     = @('Get-CloudUser', 'Set-CloudPassword', 'Invoke-PasswordHashSync')
    }
    'Revoke-CloudSession' = @{
        Defaults    = @{ Tenant = '$env:PHSYNC_TENANT'; TokenFile = '$env:PHSYNC_TOKEN_FILE'; CaFile = '$env:PHSYNC_CA_FILE'  }
        Synopsis    = 'Ends every sign-in session of a cloud user now.'
        Description = 'Revokes all of the user''s open sessions in the cloud tenant, as phsync cloud session revoke does: their session tokens stop working at once, for example after a token was stolen or when someone leaves. The password is not changed, so the user can sign in again; to lock the user out, reset the password as well (Set-CloudPassword also ends every session). Returns a CloudSessionRevocation with the number of sessions that were open; 0 is a result, not an error.

An unknown user is an ObjectNotFound error (PHS_E_NOT_FOUND) and a malformed UPN an InvalidArgument error (PHS_E_INVALID_ARGUMENT), both non-terminating, so the pipeline goes on with the next user. Against a tenant service the token must have the admin role. Supports -WhatIf and -Confirm, and takes UserPrincipalName from the pipeline, by value or by property name (UPN, UserName).'
        Parameters  = @{
            UserPrincipalName = 'The user''s UPN. From the pipeline, or by property name (UPN, UserName), for example from Get-CloudUser.'
            Tenant            = 'The tenant: a tenant file, a postgres:// URL, or the https:// URL of a tenant service. Default: $env:PHSYNC_TENANT.'
            TokenFile         = 'For a tenant service: the file holding an API token (mode 0600). Default: $env:PHSYNC_TOKEN_FILE.'
            CaFile            = 'For a tenant service: PEM CA certificates to trust instead of the system''s roots. Default: $env:PHSYNC_CA_FILE.'
        }
        Examples    = @(
            @{ Code = 'Revoke-CloudSession -UserPrincipalName alice@contoso.com -Tenant ./tenant.db'; Remarks = 'Ends all of Alice''s sessions and shows how many there were.' }
            @{ Code = 'Revoke-CloudSession alice@contoso.com -Tenant https://tenant.contoso.com:8443 -TokenFile ~/.phsync/admin.token -CaFile ./contoso-ca.pem'; Remarks = 'The same against a tenant service, with an administrator token.' }
            @{ Code = 'Import-Csv leavers.csv | Revoke-CloudSession -WhatIf'; Remarks = 'Shows whose sessions a CSV file with a UPN column would end, without ending any.' }
        )
        Related     = @('Set-CloudPassword', 'Get-CloudUser')
    }
    'Invoke-PasswordHashSync' = @{
        Defaults    = @{ ConfigPath = '$env:PHSYNC_CONFIG'  }
        Synopsis    = 'Runs a password hash synchronization cycle, or synchronizes the named users now.'
        Description = 'Without -UserName, runs one sync cycle (incremental, or full with -Full) of the engine that the config file describes, shows its progress, and returns a SyncCycleResult: counts of users in scope, changes, applied, stale, filtered, disabled, failed and queued for retry, and the per-user results in Users. With -UserName, synchronizes each named user (sAMAccountName, UPN, DN or GUID) now and returns one UserSyncResult each.

A failure of the engine as a whole (config, DC or tenant unreachable) is a terminating error whose ErrorId is the native status name (PHS_E_CONFIG, PHS_E_DIRECTORY, PHS_E_REPLICATION, ...). Each user whose password could not be synced is a non-terminating error after the result, whose ErrorId is the user''s status (Error, RetryRequestedByTarget, MissingAttribute, ...), so -ErrorAction and $? report it.

Ctrl+C (or PowerShell.Stop()) stops a running cycle once the replication batch or the tenant write in flight (a batch of at most 200 users) is done: what was applied stays applied, the stored cursor does not move, and the next cycle resumes.'
        Parameters  = @{
            ConfigPath = 'The engine''s TOML config file. Default: $env:PHSYNC_CONFIG.'
            Full       = 'Run a full cycle (every user in scope, ignoring the stored cursor) instead of an incremental one.'
            UserName   = 'Synchronize only these users, now: sAMAccountName, DOMAIN\sam, UPN, DN or GUID. From the pipeline, or by property name (SamAccountName, Identity).'
        }
        Examples    = @(
            @{ Code = 'Invoke-PasswordHashSync -ConfigPath /etc/phsync/phsync.toml -Full'; Remarks = 'A full sync, as after installation or a change of scope.' }
            @{ Code = '''alice'', ''bob'' | Invoke-PasswordHashSync -ConfigPath C:\phsync\phsync.toml | Format-Table SamAccountName, Status, Reason'; Remarks = 'Synchronizes two users now, as after a help-desk reset.' }
            @{ Code = '$r = Invoke-PasswordHashSync -ErrorVariable failed; if ($failed -or -not $r.Ok) { exit 1 }'; Remarks = 'What a scheduled job does (with $env:PHSYNC_CONFIG set): exit non-zero when the cycle or a user failed.' }
        )
        Related     = @('Get-PasswordHashSyncStatus', 'Register-PasswordHashSyncTask', 'Test-PasswordHashSyncConnection')
    }
    'Start-PasswordHashSync' = @{
        Defaults    = @{ ConfigPath = '$env:PHSYNC_CONFIG'  }
        Synopsis    = 'Runs password hash sync in the foreground until stopped, syncing changed passwords within seconds.'
        Description = 'Runs the engine that the config file describes as phsync run does, until Ctrl+C (or PowerShell.Stop(), Stop-Job): a first cycle, then change-driven sync from the domain controller''s change notifications (with [sync] notifications = true, the default), so a password changed on-premises reaches the tenant within seconds, and a periodic cycle every interval_seconds as a safety net. A dropped notification connection is reopened with backoff and followed by a catch-up cycle. For a scheduled task or service that wants change-driven sync; Register-PasswordHashSyncTask runs single cycles instead.

It returns nothing. The engine''s events (start, cycles, notifications connected, lost and resumed, stop) are written as verbose messages (warnings and errors as warnings), and its state (notifications, last cycle) as a progress record. A stop takes effect after the user in flight: what was applied stays applied and the stored cursor does not move past what was not. Failures while running (DC or tenant unreachable) are logged and retried, not errors; a config that cannot be opened is a terminating error whose ErrorId is the native status name (PHS_E_CONFIG, PHS_E_STATE, ...).

Get-PasswordHashSyncStatus shows the notification state (Notifications, NotificationsLive) from another session while it runs. Supports -WhatIf and -Confirm.'
        Parameters  = @{
            ConfigPath = 'The engine''s TOML config file. Default: $env:PHSYNC_CONFIG.'
        }
        Examples    = @(
            @{ Code = 'Start-PasswordHashSync -ConfigPath /etc/phsync/phsync.toml -Verbose'; Remarks = 'Syncs changed passwords within seconds until Ctrl+C, showing the engine''s events.' }
            @{ Code = '$job = Start-ThreadJob { Start-PasswordHashSync -ConfigPath C:\phsync\phsync.toml }; (Get-PasswordHashSyncStatus -ConfigPath C:\phsync\phsync.toml).Notifications; Stop-Job $job'; Remarks = 'Runs it in a background job, reads whether notifications are live, and stops it.' }
        )
        Related     = @('Invoke-PasswordHashSync', 'Get-PasswordHashSyncStatus', 'Get-PasswordHashSyncEvent')
    }
    'Get-PasswordHashSyncStatus' = @{
        Defaults    = @{ ConfigPath = '$env:PHSYNC_CONFIG'  }
        Synopsis    = 'Gets when password hash sync last ran and how it went, or the diagnostics of users.'
        Description = 'Without -UserName, returns one status: the last cycle (full or incremental, when it started and finished, whether it succeeded, its counts and error), the state of the change notifications of Start-PasswordHashSync or phsync run (Notifications: State connecting, connected, lost, unsupported, disabled, stopped or stale, Live, Since, LastNotificationAt, Detail, Source notifications or dirsync, ProcessId and HeartbeatAt of the run, and Stats: the changes reported, users replicated alone, applied without replication or unchanged, and scope re-reads; null if it never ran), the scheduled tasks that run this config and when the next cycle is due, and every user the engine has seen (Users, FailedUserCount).

With -UserName, returns each user''s diagnostics: object GUID, names, source anchor, the last attempt and its status (Success, FilteredByTarget, RetryRequestedByTarget, Error, ...) and reason, when the password changed on-premises and when the cloud accepted it, the retry state, and the history of attempts. A user the engine has no record of is an ObjectNotFound error.'
        Parameters  = @{
            ConfigPath = 'The engine''s TOML config file. Default: $env:PHSYNC_CONFIG.'
            UserName   = 'The users (sAMAccountName, UPN, DN or GUID). From the pipeline, or by property name (SamAccountName, Identity).'
            Root       = 'Where to look for scheduled tasks, as for Register-PasswordHashSyncTask -Root. Default: the system.'
        }
        Examples    = @(
            @{ Code = 'Get-PasswordHashSyncStatus -ConfigPath /etc/phsync/phsync.toml'; Remarks = 'When did it last run, did it succeed, and when is the next cycle due.' }
            @{ Code = '(Get-PasswordHashSyncStatus).Users | Where-Object IsFailure'; Remarks = 'Every user whose last attempt failed.' }
            @{ Code = 'Get-ADUser -Filter * -SearchBase ''OU=Sales,DC=contoso,DC=com'' | Get-PasswordHashSyncStatus | Select-Object SamAccountName, Status, AppliedAt'; Remarks = 'The sync state of an OU''s users (SamAccountName binds by property name).' }
        )
        Related     = @('Invoke-PasswordHashSync', 'Get-PasswordHashSyncEvent', 'Get-PasswordHashSyncTask')
    }
    'Test-PasswordHashSyncConnection' = @{
        Defaults    = @{ ConfigPath = '$env:PHSYNC_CONFIG'  }
        Synopsis    = 'Tests every connection password hash sync needs, one result per check.'
        Description = 'Checks, in order: the config file, FIPS mode, that the domain controller is reachable (LDAP and the RPC endpoint mapper), the LDAP bind, the DRSR bind, replication rights (reading one in-scope user''s password, as a sync does), that the tenant is reachable, and for a tenant service that the token is valid and its certificate is trusted. Each result says passed, failed or skipped, with the reason; a check whose prerequisite failed is skipped. Nothing is written to the tenant.'
        Parameters  = @{
            ConfigPath = 'The engine''s TOML config file. Default: $env:PHSYNC_CONFIG.'
            Quiet      = 'Return only $true (every check passed or was skipped) or $false.'
        }
        Examples    = @(
            @{ Code = 'Test-PasswordHashSyncConnection -ConfigPath /etc/phsync/phsync.toml'; Remarks = 'A table of the checks, for example after installation or when a sync fails.' }
            @{ Code = 'if (-not (Test-PasswordHashSyncConnection -Quiet)) { Write-Warning ''phsync cannot reach the DC or the tenant'' }'; Remarks = 'A monitoring probe (with $env:PHSYNC_CONFIG set).' }
        )
        Related     = @('Invoke-PasswordHashSync')
    }
    'Test-PasswordHashSyncQuality' = @{
        Defaults    = @{ ConfigPath = '$env:PHSYNC_CONFIG'  }
        Synopsis    = 'Audits password quality: empty, weak, shared and leaked passwords and risky password settings.'
        Description = 'Reads the accounts'' credentials from the domain controller the way a sync does (MS-DRSR replication, with the LM hash, supplementalCredentials and adminCount) and reports, per finding, the accounts it applies to: empty password; password in the weak-password dictionary; password in the leaked-hash list (with its breach count); passwords shared by several accounts (by group); computer account with its default password; LM hash stored; password not required (PASSWD_NOTREQD); reversible encryption; no Kerberos AES keys; password never expires; administrators (adminCount) with any of these.

By default the users in the config''s sync scope are audited; -AllAccounts audits every user and computer account of the domain, disabled ones included. No object, message or log line holds a hash, and nothing is written to the directory, the tenant or the engine''s state. An unusable list (missing, unsorted, malformed) is an InvalidArgument error (PHS_E_INVALID_ARGUMENT) naming the file.'
        Parameters  = @{
            ConfigPath        = 'The engine''s TOML config file. Default: $env:PHSYNC_CONFIG.'
            LeakedHashesPath  = 'Have I Been Pwned''s "NTLM ordered by hash" file (HASH:COUNT lines) or any sorted list of NT hashes. It is memory-mapped and binary-searched in place, never loaded.'
            WeakPasswordsPath = 'A UTF-8 text file of weak passwords, one per line; they are hashed when the file is read.'
            AllAccounts       = 'Audit every user and computer account of the domain instead of the users in the sync scope.'
            Summary           = 'Write one object per finding with its count instead of one per account.'
        }
        Examples    = @(
            @{ Code = 'Test-PasswordHashSyncQuality -ConfigPath /etc/phsync/phsync.toml -LeakedHashesPath /data/pwned-passwords-ntlm-ordered-by-hash-v8.txt -WeakPasswordsPath ./weak.txt'; Remarks = 'The accounts of each finding, grouped by finding.' }
            @{ Code = 'Test-PasswordHashSyncQuality -Summary -AllAccounts'; Remarks = 'How many accounts of the whole domain each finding names (with $env:PHSYNC_CONFIG set).' }
            @{ Code = 'Test-PasswordHashSyncQuality -LeakedHashesPath ./hibp.txt | Where-Object Finding -eq leaked_password | Sort-Object BreachCount -Descending'; Remarks = 'The users with a leaked password, most breached first.' }
        )
        Related     = @('Test-PasswordHashSyncConnection', 'Invoke-PasswordHashSync')
    }
    'Get-PasswordHashSyncEvent' = @{
        Defaults    = @{ ConfigPath = '$env:PHSYNC_CONFIG'  }
        Synopsis    = 'Gets events from the password hash sync event log.'
        Description = 'Reads the engine''s event log (events.jsonl in its state folder, with its rotated files), oldest first, with Microsoft''s Directory Synchronization event IDs: 601/602 start and stop, 605/606 retry queue, 611 domain failure, 617-623 full sync, 620 no retry, 650/651 cycle, 652 and 664 sync errors. Events name users and statuses, never a secret. The engine and the tenant are not opened.'
        Parameters  = @{
            ConfigPath = 'The engine''s TOML config file. Default: $env:PHSYNC_CONFIG.'
            Id         = 'Only events with these IDs.'
            After      = 'Only events after this time.'
            Newest     = 'Only the newest N events (after the other filters).'
        }
        Examples    = @(
            @{ Code = 'Get-PasswordHashSyncEvent -ConfigPath /etc/phsync/phsync.toml -Newest 20'; Remarks = 'The last 20 events.' }
            @{ Code = 'Get-PasswordHashSyncEvent -Id 611, 652, 664 -After (Get-Date).AddDays(-1)'; Remarks = 'Failures of the last day.' }
        )
        Related     = @('Get-PasswordHashSyncStatus')
    }
    'Register-PasswordHashSyncTask' = @{
        Defaults    = @{ Interval = '00:02:00'; Name = 'PasswordHashSync'; Scheduler = 'Auto'; RunAsAccount = 'SYSTEM (Windows), root (Linux)'; PowerShellPath = 'this PowerShell'  }
        Synopsis    = 'Schedules Invoke-PasswordHashSync to run at an interval.'
        Description = 'On Windows, registers the scheduled task \phsync\<Name> running as SYSTEM or as -RunAsAccount (a group managed service account), with no execution time limit and no overlapping runs. On Linux, writes a systemd service and timer to /etc/systemd/system and enables the timer, or, without systemd, a cron entry in /etc/cron.d that takes a lock so runs never overlap.

The job starts the PowerShell running now (or -PowerShellPath), imports PasswordHashSync by name (so an update of the module does not break it: install the module in a folder of $env:PSModulePath), runs one cycle and exits 1 when the cycle or a user failed, so Task Scheduler, systemd and cron show the failure. Its command is passed as -EncodedCommand; the readable command is a comment in the unit or cron file.

-Root writes the files under another folder and calls no systemctl. -WhatIf shows what would be written and changes nothing. Needs administrator (root) rights otherwise.'
        Parameters  = @{
            ConfigPath     = 'The engine''s TOML config file (made absolute).'
            Interval       = 'How often to run. Default: 2 minutes, as Entra Connect''s password hash sync. At least one minute, in whole seconds; with cron, whole minutes dividing an hour or whole hours dividing a day.'
            Name           = 'Name of the task, unit pair or cron file. Default: PasswordHashSync (lower case for systemd and cron).'
            RunAsAccount   = 'Windows: the account the task runs as, for example a gMSA CONTOSO\phsync$. Default: SYSTEM. Linux: the user of the service or cron entry. Default: root.'
            Scheduler      = 'Auto (default: Task Scheduler on Windows, systemd when it runs, else cron), Systemd, Cron or TaskScheduler.'
            Root           = 'Write the files under this folder instead of / (an image being built, or a test), and call no systemctl.'
            PowerShellPath = 'The PowerShell executable the job starts. Default: the one running this command.'
        }
        Examples    = @(
            @{ Code = 'Register-PasswordHashSyncTask -ConfigPath /etc/phsync/phsync.toml -Interval (New-TimeSpan -Minutes 5) -WhatIf'; Remarks = 'Shows the systemd units or cron entry it would write.' }
            @{ Code = 'Register-PasswordHashSyncTask -ConfigPath C:\phsync\phsync.toml -RunAsAccount ''CONTOSO\phsync$'''; Remarks = 'A Windows task every 2 minutes as a group managed service account.' }
        )
        Related     = @('Get-PasswordHashSyncTask', 'Unregister-PasswordHashSyncTask', 'Invoke-PasswordHashSync')
    }
    'Get-PasswordHashSyncTask' = @{
        Defaults    = @{ Name = '*'  }
        Synopsis    = 'Gets the scheduled password hash sync runs that Register-PasswordHashSyncTask created.'
        Description = 'Lists the Windows scheduled tasks under \phsync\, or the systemd units and cron entries marked as written by Register-PasswordHashSyncTask, with their interval, account, config file, command and files. Other units and cron files are never listed.'
        Parameters  = @{
            Name = 'Only runs whose name matches (wildcards allowed). Default: all.'
            Root = 'Look under this folder instead of /, as for Register-PasswordHashSyncTask -Root.'
        }
        Examples    = @(
            @{ Code = 'Get-PasswordHashSyncTask'; Remarks = 'Every scheduled password hash sync on this machine.' }
        )
        Related     = @('Register-PasswordHashSyncTask', 'Unregister-PasswordHashSyncTask')
    }
    'Unregister-PasswordHashSyncTask' = @{
        Synopsis    = 'Stops and removes scheduled password hash sync runs.'
        Description = 'Removes the Windows scheduled task, or disables the systemd timer and removes the service and timer (then reloads systemd), or removes the cron entry. Only runs that Register-PasswordHashSyncTask wrote are touched. Supports -WhatIf and -Confirm; takes the objects of Get-PasswordHashSyncTask from the pipeline.'
        Parameters  = @{
            Name        = 'The run''s name (wildcards allowed).'
            Root        = 'Look under this folder instead of /, as for Register-PasswordHashSyncTask -Root.'
            InputObject = 'A run from Get-PasswordHashSyncTask.'
        }
        Examples    = @(
            @{ Code = 'Unregister-PasswordHashSyncTask -Name PasswordHashSync'; Remarks = 'Removes the default scheduled run.' }
            @{ Code = 'Get-PasswordHashSyncTask | Unregister-PasswordHashSyncTask -WhatIf'; Remarks = 'Shows what would be removed.' }
        )
        Related     = @('Register-PasswordHashSyncTask', 'Get-PasswordHashSyncTask')
    }
}
