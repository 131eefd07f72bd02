#Requires -Version 5.1
# PasswordHashSync: the phsync engine's cmdlets, over the C ABI (include/phsync.h) through the
# C# 5 interop layer PhsyncNative.cs, compiled by Add-Type when the module is imported.
#
# Naming rule (checked by tests/powershell/parse_check.py): every function whose name contains
# a dash is public, uses an approved verb and is listed in FunctionsToExport; private helpers
# have no dash in their name (Phs...).

if (-not ('PasswordHashSync.PhsyncLibrary' -as [type])) {
    Add-Type -Path (Join-Path $PSScriptRoot 'PhsyncNative.cs') -IgnoreWarnings
}

$script:PhsLibraryInstance = $null

# ---- private helpers ------------------------------------------------------------------------

function PhsLibrary {
    # The native library from native/<rid>/ of this module, loaded once.
    if ($null -eq $script:PhsLibraryInstance) {
        $script:PhsLibraryInstance = [PasswordHashSync.PhsyncLibrary]::Load($PSScriptRoot)
    }
    $script:PhsLibraryInstance
}

function PhsInnerException {
    param([System.Exception]$Exception)
    # PowerShell wraps exceptions from .NET method calls; the interop's own type is inside.
    $e = $Exception
    while (($e -is [System.Management.Automation.MethodInvocationException] -or
            $e -is [System.Reflection.TargetInvocationException]) -and $null -ne $e.InnerException) {
        $e = $e.InnerException
    }
    $e
}

function PhsCategory {
    param([string]$StatusName)
    switch ($StatusName) {
        'PHS_E_NULL_ARGUMENT' { return [System.Management.Automation.ErrorCategory]::InvalidArgument }
        'PHS_E_INVALID_UTF8' { return [System.Management.Automation.ErrorCategory]::InvalidArgument }
        'PHS_E_INVALID_ARGUMENT' { return [System.Management.Automation.ErrorCategory]::InvalidArgument }
        'PHS_E_PASSWORD_TOO_LONG' { return [System.Management.Automation.ErrorCategory]::InvalidArgument }
        'PHS_E_INVALID_PASSWORD' { return [System.Management.Automation.ErrorCategory]::InvalidArgument }
        'PHS_E_MALFORMED_DIGEST' { return [System.Management.Automation.ErrorCategory]::InvalidData }
        'PHS_E_BUFFER_TOO_SMALL' { return [System.Management.Automation.ErrorCategory]::LimitsExceeded }
        'PHS_E_RANDOM' { return [System.Management.Automation.ErrorCategory]::ResourceUnavailable }
        'PHS_E_NOT_FOUND' { return [System.Management.Automation.ErrorCategory]::ObjectNotFound }
        'PHS_E_PASSWORD_POLICY' { return [System.Management.Automation.ErrorCategory]::SecurityError }
        'PHS_E_CONFLICT' { return [System.Management.Automation.ErrorCategory]::ResourceExists }
        'PHS_E_STORAGE' { return [System.Management.Automation.ErrorCategory]::WriteError }
        'PHS_E_ACCESS_DENIED' { return [System.Management.Automation.ErrorCategory]::PermissionDenied }
        'PHS_E_UNREACHABLE' { return [System.Management.Automation.ErrorCategory]::ConnectionError }
        'PHS_E_THROTTLED' { return [System.Management.Automation.ErrorCategory]::LimitsExceeded }
        'PHS_E_REMOTE' { return [System.Management.Automation.ErrorCategory]::ProtocolError }
        'PHS_E_CONFIG' { return [System.Management.Automation.ErrorCategory]::InvalidData }
        'PHS_E_DIRECTORY' { return [System.Management.Automation.ErrorCategory]::ConnectionError }
        'PHS_E_REPLICATION' { return [System.Management.Automation.ErrorCategory]::ProtocolError }
        'PHS_E_FIPS' { return [System.Management.Automation.ErrorCategory]::SecurityError }
        'PHS_E_STATE' { return [System.Management.Automation.ErrorCategory]::ResourceUnavailable }
    }
    [System.Management.Automation.ErrorCategory]::NotSpecified
}

function PhsErrorRecord {
    param([System.Exception]$Exception, [object]$Target)
    # An ErrorRecord for a failure of the interop layer: the native status name is the error
    # id, the category follows it, and the message is the native message.
    $e = PhsInnerException $Exception
    $id = 'PhsyncError'
    $category = [System.Management.Automation.ErrorCategory]::NotSpecified
    if ($e -is [PasswordHashSync.PhsyncException]) {
        $id = $e.StatusName
        $category = PhsCategory $e.StatusName
    }
    elseif ($e -is [PasswordHashSync.PhsyncLibraryNotFoundException]) {
        $id = 'PhsyncLibraryNotFound'
        $category = [System.Management.Automation.ErrorCategory]::ResourceUnavailable
        if ($null -eq $Target) { $Target = $e.FileName }
    }
    elseif ($e -is [PasswordHashSync.PhsyncMissingExportException]) {
        $id = 'PhsyncExportMissing'
        $category = [System.Management.Automation.ErrorCategory]::NotImplemented
    }
    elseif ($e -is [System.DllNotFoundException]) {
        $id = 'PhsyncLibraryLoadFailed'
        $category = [System.Management.Automation.ErrorCategory]::ResourceUnavailable
    }
    elseif ($e -is [System.ArgumentException]) {
        $id = 'PhsyncInvalidArgument'
        $category = [System.Management.Automation.ErrorCategory]::InvalidArgument
    }
    New-Object System.Management.Automation.ErrorRecord -ArgumentList $e, $id, $category, $Target
}

function PhsUsageError {
    param([string]$Message, [string]$Id, [object]$Target)
    $e = New-Object System.ArgumentException -ArgumentList $Message
    New-Object System.Management.Automation.ErrorRecord -ArgumentList $e, $Id, ([System.Management.Automation.ErrorCategory]::InvalidArgument), $Target
}

function PhsTenantPath {
    param([System.Management.Automation.PSCmdlet]$Cmdlet, [string]$Tenant)
    # -Tenant, else $env:PHSYNC_TENANT; a provider path becomes a file-system path.
    if ([string]::IsNullOrEmpty($Tenant)) { $Tenant = $env:PHSYNC_TENANT }
    if ([string]::IsNullOrEmpty($Tenant)) {
        $Cmdlet.ThrowTerminatingError((PhsUsageError 'No tenant: pass -Tenant or set $env:PHSYNC_TENANT.' 'PhsyncNoTenant' $null))
    }
    # URLs (a tenant service, PostgreSQL) pass unchanged.
    if ($Tenant -match '^(https?|postgres(ql)?)://') { return $Tenant }
    $Cmdlet.SessionState.Path.GetUnresolvedProviderPathFromPSPath($Tenant)
}

function PhsOpenCloud {
    param([System.Management.Automation.PSCmdlet]$Cmdlet, [string]$Tenant, [string]$TokenFile, [string]$CaFile)
    # A tenant service (https://) needs a token file (-TokenFile, else $env:PHSYNC_TOKEN_FILE)
    # and may name a CA file (-CaFile, else $env:PHSYNC_CA_FILE); files and postgres:// do not.
    if ($Tenant -notmatch '^https?://') { return (PhsLibrary).OpenCloud($Tenant) }
    if ([string]::IsNullOrEmpty($TokenFile)) { $TokenFile = $env:PHSYNC_TOKEN_FILE }
    if ([string]::IsNullOrEmpty($CaFile)) { $CaFile = $env:PHSYNC_CA_FILE }
    if ([string]::IsNullOrEmpty($TokenFile)) {
        $Cmdlet.ThrowTerminatingError((PhsUsageError "The tenant $Tenant is a service: pass -TokenFile or set `$env:PHSYNC_TOKEN_FILE." 'PhsyncNoTokenFile' $Tenant))
    }
    $TokenFile = $Cmdlet.SessionState.Path.GetUnresolvedProviderPathFromPSPath($TokenFile)
    if (-not [string]::IsNullOrEmpty($CaFile)) {
        $CaFile = $Cmdlet.SessionState.Path.GetUnresolvedProviderPathFromPSPath($CaFile)
    }
    else {
        $CaFile = $null
    }
    (PhsLibrary).OpenRemoteCloud($Tenant, $TokenFile, $CaFile)
}

function PhsConfigPath {
    param([System.Management.Automation.PSCmdlet]$Cmdlet, [string]$ConfigPath)
    # -ConfigPath, else $env:PHSYNC_CONFIG; it must exist.
    if ([string]::IsNullOrEmpty($ConfigPath)) { $ConfigPath = $env:PHSYNC_CONFIG }
    if ([string]::IsNullOrEmpty($ConfigPath)) {
        $Cmdlet.ThrowTerminatingError((PhsUsageError 'No config file: pass -ConfigPath or set $env:PHSYNC_CONFIG.' 'PhsyncNoConfig' $null))
    }
    $full = $Cmdlet.SessionState.Path.GetUnresolvedProviderPathFromPSPath($ConfigPath)
    if (-not (Test-Path -LiteralPath $full -PathType Leaf)) {
        $e = New-Object System.IO.FileNotFoundException -ArgumentList "Config file not found: $full", $full
        $Cmdlet.ThrowTerminatingError((New-Object System.Management.Automation.ErrorRecord -ArgumentList $e, 'PhsyncConfigNotFound', ([System.Management.Automation.ErrorCategory]::ObjectNotFound), $full))
    }
    $full
}

function PhsDate {
    param([object]$Value)
    # RFC 3339 from JSON (a string on Windows PowerShell, already a DateTime on PowerShell 7).
    if ($null -eq $Value) { return $null }
    if ($Value -is [datetime]) { return $Value.ToUniversalTime() }
    $styles = [System.Globalization.DateTimeStyles]::AdjustToUniversal -bor [System.Globalization.DateTimeStyles]::AssumeUniversal
    [datetime]::Parse([string]$Value, [System.Globalization.CultureInfo]::InvariantCulture, $styles)
}

function PhsObject {
    param([string]$Json, [string]$TypeName)
    # The native JSON result as a PSCustomObject with a type name.
    $o = ConvertFrom-Json -InputObject $Json
    $o.PSObject.TypeNames.Insert(0, $TypeName)
    $o
}

function PhsUserResult {
    param([string]$Json)
    $o = PhsObject $Json 'PasswordHashSync.UserSyncResult'
    $o
}

function PhsCycleResult {
    param([string]$Json)
    $o = PhsObject $Json 'PasswordHashSync.SyncCycleResult'
    foreach ($u in @($o.users)) {
        if ($null -ne $u) { $u.PSObject.TypeNames.Insert(0, 'PasswordHashSync.UserSyncResult') }
    }
    $o
}

function PhsQuote {
    param([string]$Text)
    # A PowerShell single-quoted string literal.
    "'" + $Text.Replace("'", "''") + "'"
}

# ---- hashing ------------------------------------------------------------------------------

function ConvertTo-NTHash {
    <#
    .SYNOPSIS
    Computes the NT hash (MD4 of UTF-16LE) of a password.

    .DESCRIPTION
    Returns the upper-case hexadecimal NT hash that Active Directory stores as unicodePwd.
    The password is passed to the phsync library as UTF-16 straight from the SecureString's
    unmanaged copy, which is zeroed and freed right after; it never becomes a managed string.

    .PARAMETER Password
    The password, as a SecureString (for example from Read-Host -AsSecureString).

    .EXAMPLE
    PS> ConvertTo-NTHash -Password (Read-Host -AsSecureString 'Password')
    92937945B518814341DE3F726500D4FF

    .OUTPUTS
    System.String
    #>
    [CmdletBinding()]
    [OutputType([string])]
    param(
        [Parameter(Mandatory = $true, Position = 0, ValueFromPipeline = $true)]
        [System.Security.SecureString]$Password
    )
    process {
        try {
            (PhsLibrary).NtHash($Password)
        }
        catch {
            $PSCmdlet.WriteError((PhsErrorRecord $_.Exception $null))
        }
    }
}

function ConvertTo-PasswordHashSyncDigest {
    <#
    .SYNOPSIS
    Computes the Password Hash Synchronization digest of a password or an NT hash.

    .DESCRIPTION
    Returns the digest string v1;PPH1_MD4,<salt>,<iterations>,<key>; that Microsoft Entra ID
    stores for a synchronized password: PBKDF2-HMAC-SHA256 over the upper-case hex NT hash.
    Without -Salt a fresh random 10-byte salt is used.

    .PARAMETER Password
    The password as a SecureString; it reaches the library as UTF-16 and never becomes a managed string.

    .PARAMETER NTHash
    An NT hash as 32 hexadecimal digits, instead of a password.

    .PARAMETER Salt
    The salt as 20 hexadecimal digits (10 bytes). Default: random.

    .PARAMETER Iterations
    PBKDF2 iterations, 1 to 1000000. Default: 1000, as Entra Connect.

    .EXAMPLE
    PS> ConvertTo-PasswordHashSyncDigest -NTHash 92937945B518814341DE3F726500D4FF -Salt 181a3024085fcee2f70e
    v1;PPH1_MD4,181a3024085fcee2f70e,1000,b39525c3bc72a1136fcf7c8a338e0c14313d0450d1a4c98ef0a6ddada3bc5b0a;

    .EXAMPLE
    PS> ConvertTo-PasswordHashSyncDigest -Password (Read-Host -AsSecureString)

    .OUTPUTS
    System.String
    #>
    [CmdletBinding(DefaultParameterSetName = 'Password')]
    [OutputType([string])]
    param(
        [Parameter(Mandatory = $true, Position = 0, ParameterSetName = 'Password', ValueFromPipeline = $true)]
        [System.Security.SecureString]$Password,

        [Parameter(Mandatory = $true, ParameterSetName = 'NTHash', ValueFromPipeline = $true, ValueFromPipelineByPropertyName = $true)]
        [ValidatePattern('^[0-9A-Fa-f]{32}$')]
        [string]$NTHash,

        [ValidatePattern('^[0-9A-Fa-f]{20}$')]
        [string]$Salt,

        [ValidateRange(1, 1000000)]
        [int]$Iterations = 1000
    )
    process {
        try {
            $lib = PhsLibrary
            $saltBytes = $null
            if ($Salt) { $saltBytes = [PasswordHashSync.PhsyncLibrary]::FromHex($Salt, 10, 'Salt') }
            if ($PSCmdlet.ParameterSetName -eq 'NTHash') {
                $lib.DigestFromNtHash([PasswordHashSync.PhsyncLibrary]::FromHex($NTHash, 16, 'NTHash'), $saltBytes, [uint32]$Iterations)
            }
            else {
                $lib.Digest($Password, $saltBytes, [uint32]$Iterations)
            }
        }
        catch {
            $PSCmdlet.WriteError((PhsErrorRecord $_.Exception $null))
        }
    }
}

# ---- cloud tenant -------------------------------------------------------------------------

function Set-CloudPassword {
    <#
    .SYNOPSIS
    Resets a cloud user's password as an administrator.

    .DESCRIPTION
    Sets the password of a user in the cloud tenant under the cloud password policy (length,
    character classes, not containing the user name). The reset overrides a synchronized
    password until the next on-premises change. Policy violations are SecurityError records
    naming what failed; an unknown user is ObjectNotFound. Supports -WhatIf and -Confirm, and
    takes UserPrincipalName and Password from the pipeline by property name.

    .PARAMETER UserPrincipalName
    The user's UPN.

    .PARAMETER Password
    The new password as a SecureString.

    .PARAMETER ForceChangePasswordNextSignIn
    The user must change the password at the next sign-in.

    .PARAMETER Tenant
    The tenant: a tenant file, a postgres:// URL, or the https:// URL of a tenant service
    (phsync cloud serve). Default: $env:PHSYNC_TENANT.

    .PARAMETER TokenFile
    For a tenant service: the file holding an API token (mode 0600). Default:
    $env:PHSYNC_TOKEN_FILE.

    .PARAMETER CaFile
    For a tenant service: PEM CA certificate(s) to trust instead of the system's roots.
    Default: $env:PHSYNC_CA_FILE.

    .EXAMPLE
    PS> Set-CloudPassword -UserPrincipalName alice@contoso.com -Password (Read-Host -AsSecureString) -ForceChangePasswordNextSignIn -Tenant ./tenant.db

    .EXAMPLE
    PS> Set-CloudPassword -UserPrincipalName alice@contoso.com -Password (Read-Host -AsSecureString) -Tenant https://tenant.contoso.com:8443 -TokenFile ~/.phsync/admin.token -CaFile ./contoso-ca.pem

    .EXAMPLE
    PS> Import-Csv resets.csv | Select-Object UserPrincipalName, @{n='Password'; e={ ConvertTo-SecureString $_.Initial -AsPlainText -Force }} | Set-CloudPassword -WhatIf

    .OUTPUTS
    PasswordHashSync.CloudPasswordResult
    #>
    [CmdletBinding(SupportsShouldProcess = $true, ConfirmImpact = 'Medium')]
    [OutputType([pscustomobject])]
    param(
        [Parameter(Mandatory = $true, Position = 0, ValueFromPipelineByPropertyName = $true)]
        [Alias('UPN')]
        [ValidateNotNullOrEmpty()]
        [string]$UserPrincipalName,

        [Parameter(Mandatory = $true, ValueFromPipelineByPropertyName = $true)]
        [System.Security.SecureString]$Password,

        [Parameter(ValueFromPipelineByPropertyName = $true)]
        [switch]$ForceChangePasswordNextSignIn,

        [string]$Tenant,

        [string]$TokenFile,

        [string]$CaFile
    )
    begin {
        $tenantPath = PhsTenantPath $PSCmdlet $Tenant
    }
    process {
        if (-not $PSCmdlet.ShouldProcess("$UserPrincipalName in tenant $tenantPath", 'Reset cloud password')) { return }
        $cloud = $null
        try {
            $cloud = PhsOpenCloud $PSCmdlet $tenantPath $TokenFile $CaFile
            $r = ConvertFrom-Json -InputObject $cloud.SetPassword($UserPrincipalName, $Password, $ForceChangePasswordNextSignIn.IsPresent)
            [pscustomobject]@{
                PSTypeName                    = 'PasswordHashSync.CloudPasswordResult'
                UserPrincipalName             = $r.user_principal_name
                Result                        = $r.result
                ChangedAt                     = PhsDate $r.changed_at
                ForceChangePasswordNextSignIn = [bool]$r.force_change_at_next_sign_in
                PasswordExpiresAt             = PhsDate $r.password_expires_at
            }
        }
        catch {
            $PSCmdlet.WriteError((PhsErrorRecord $_.Exception $UserPrincipalName))
        }
        finally {
            if ($null -ne $cloud) { $cloud.Dispose() }
        }
    }
}

function Test-CloudSignIn {
    <#
    .SYNOPSIS
    Tests whether a user can sign in to the cloud tenant with a password.

    .DESCRIPTION
    Performs a sign-in against the tenant and returns its outcome: Success, or why it was
    refused (invalid_credentials, must_change_password, password_expired, account_disabled,
    locked_out). A refusal is a result, not an error; a wrong password counts toward smart
    lockout as any sign-in does. The session token is not returned.

    .PARAMETER UserPrincipalName
    The user's UPN.

    .PARAMETER Password
    The password as a SecureString.

    .PARAMETER Tenant
    The tenant: a tenant file, a postgres:// URL, or the https:// URL of a tenant service
    (phsync cloud serve). Default: $env:PHSYNC_TENANT.

    .PARAMETER TokenFile
    For a tenant service: the file holding an API token (mode 0600). Default:
    $env:PHSYNC_TOKEN_FILE.

    .PARAMETER CaFile
    For a tenant service: PEM CA certificate(s) to trust instead of the system's roots.
    Default: $env:PHSYNC_CA_FILE.

    .EXAMPLE
    PS> Test-CloudSignIn -UserPrincipalName alice@contoso.com -Password (Read-Host -AsSecureString)

    UserPrincipalName Result  Succeeded SessionExpiresAt
    ----------------- ------  --------- ----------------
    alice@contoso.com success      True 2026-11-23 10:00:00

    .OUTPUTS
    PasswordHashSync.SignInResult
    #>
    [CmdletBinding()]
    [OutputType([pscustomobject])]
    param(
        [Parameter(Mandatory = $true, Position = 0, ValueFromPipelineByPropertyName = $true)]
        [Alias('UPN')]
        [ValidateNotNullOrEmpty()]
        [string]$UserPrincipalName,

        [Parameter(Mandatory = $true, ValueFromPipelineByPropertyName = $true)]
        [System.Security.SecureString]$Password,

        [string]$Tenant,

        [string]$TokenFile,

        [string]$CaFile
    )
    begin {
        $tenantPath = PhsTenantPath $PSCmdlet $Tenant
    }
    process {
        $cloud = $null
        try {
            $cloud = PhsOpenCloud $PSCmdlet $tenantPath $TokenFile $CaFile
            $r = ConvertFrom-Json -InputObject $cloud.SignIn($UserPrincipalName, $Password)
            [pscustomobject]@{
                PSTypeName        = 'PasswordHashSync.SignInResult'
                UserPrincipalName = $r.user_principal_name
                Result            = $r.result
                Succeeded         = ($r.result -eq 'success')
                SessionExpiresAt  = PhsDate $r.session_expires_at
            }
        }
        catch {
            $PSCmdlet.WriteError((PhsErrorRecord $_.Exception $UserPrincipalName))
        }
        finally {
            if ($null -ne $cloud) { $cloud.Dispose() }
        }
    }
}

# ---- sync engine --------------------------------------------------------------------------

function Invoke-PasswordHashSync {
    <#
    .SYNOPSIS
    Runs a password hash synchronization cycle, or synchronizes the named users now.

    .DESCRIPTION
    Without -UserName, runs one sync cycle (incremental, or full with -Full) of the engine
    configured by the config file and returns the cycle's result: counts of users in scope,
    changes, applied, stale, filtered, disabled, failed and queued for retry, and the per-user
    results in .users. Progress is shown with Write-Progress. With -UserName, synchronizes each
    named user (sAMAccountName, UPN, DN or GUID) and returns one result per user.
    A cycle that is not ok writes a warning; a failure of the engine is an error record whose
    id is the native status name (PHS_E_CONFIG, PHS_E_DIRECTORY, PHS_E_REPLICATION, ...).

    .PARAMETER ConfigPath
    The engine's TOML config file. Default: $env:PHSYNC_CONFIG.

    .PARAMETER Full
    Run a full cycle (every user in scope) instead of an incremental one.

    .PARAMETER UserName
    Synchronize only these users, now.

    .EXAMPLE
    PS> Invoke-PasswordHashSync -ConfigPath /etc/phsync/phsync.toml -Full

    .EXAMPLE
    PS> 'alice', 'bob' | Invoke-PasswordHashSync -ConfigPath C:\phsync\phsync.toml | Format-Table sam_account_name, status, reason

    .OUTPUTS
    PasswordHashSync.SyncCycleResult, PasswordHashSync.UserSyncResult
    #>
    [CmdletBinding(DefaultParameterSetName = 'Cycle')]
    [OutputType([pscustomobject])]
    param(
        [Parameter(Position = 0)]
        [string]$ConfigPath,

        [Parameter(ParameterSetName = 'Cycle')]
        [switch]$Full,

        [Parameter(Mandatory = $true, ParameterSetName = 'User', ValueFromPipeline = $true, ValueFromPipelineByPropertyName = $true)]
        [Alias('SamAccountName', 'Identity')]
        [ValidateNotNullOrEmpty()]
        [string[]]$UserName
    )
    begin {
        $config = PhsConfigPath $PSCmdlet $ConfigPath
        $names = New-Object System.Collections.Generic.List[string]
    }
    process {
        foreach ($n in @($UserName)) { if ($n) { $names.Add($n) } }
    }
    end {
        $engine = $null
        try {
            $engine = (PhsLibrary).OpenEngine($config)
        }
        catch {
            $PSCmdlet.ThrowTerminatingError((PhsErrorRecord $_.Exception $config))
        }
        try {
            if ($PSCmdlet.ParameterSetName -eq 'User') {
                foreach ($n in $names) {
                    try {
                        PhsUserResult $engine.SyncUser($n)
                    }
                    catch {
                        $PSCmdlet.WriteError((PhsErrorRecord $_.Exception $n))
                    }
                }
                return
            }
            $activity = if ($Full) { 'Password hash sync (full)' } else { 'Password hash sync' }
            # Called by the native engine on this (the pipeline's) thread during SyncCycle.
            $progress = [PasswordHashSync.PhsyncProgressHandler] ({
                    param([string]$Stage, [uint64]$Done, [uint64]$Total)
                    $percent = -1
                    if ($Total -gt 0) { $percent = [int][Math]::Min(100, [Math]::Floor(100.0 * $Done / $Total)) }
                    Write-Progress -Activity $activity -Status ('{0}: {1} of {2}' -f $Stage, $Done, $Total) -PercentComplete $percent
                }.GetNewClosure())
            try {
                $json = $engine.SyncCycle($Full.IsPresent, $progress)
            }
            catch {
                $PSCmdlet.ThrowTerminatingError((PhsErrorRecord $_.Exception $config))
            }
            finally {
                Write-Progress -Activity $activity -Completed
            }
            $result = PhsCycleResult $json
            if (-not $result.ok) {
                Write-Warning ('Sync cycle finished with {0} failed user(s), {1} queued for retry; see the users property.' -f $result.failed, $result.retry_queued)
            }
            $result
        }
        finally {
            $engine.Dispose()
        }
    }
}

function Get-PasswordHashSyncStatus {
    <#
    .SYNOPSIS
    Gets the password hash synchronization diagnostics of users.

    .DESCRIPTION
    Returns, for each named user, the engine's per-user state: object GUID, names, source
    anchor, the last attempt and its status (Success, FilteredByTarget, RetryRequestedByTarget,
    Error, ...) and reason, when the password changed on-premises and when it was applied in
    the cloud, the retry state, and the history of attempts. An unknown user is an
    ObjectNotFound error. Without -UserName, returns every user the engine has seen (without
    history), for example to find all users whose last attempt failed.

    .PARAMETER ConfigPath
    The engine's TOML config file. Default: $env:PHSYNC_CONFIG.

    .PARAMETER UserName
    The users (sAMAccountName, UPN, DN or GUID). Default: every user the engine has seen.

    .EXAMPLE
    PS> Get-PasswordHashSyncStatus -ConfigPath /etc/phsync/phsync.toml -UserName alice

    .EXAMPLE
    PS> Get-PasswordHashSyncStatus -ConfigPath /etc/phsync/phsync.toml | Where-Object status -ne 'Success'

    .EXAMPLE
    PS> Get-ADUser -Filter * -SearchBase 'OU=Sales,DC=contoso,DC=com' | Get-PasswordHashSyncStatus | Where-Object status -ne 'Success'

    .OUTPUTS
    PasswordHashSync.UserSyncStatus
    #>
    [CmdletBinding()]
    [OutputType([pscustomobject])]
    param(
        [Parameter(Position = 0)]
        [string]$ConfigPath,

        [Parameter(ValueFromPipeline = $true, ValueFromPipelineByPropertyName = $true)]
        [Alias('SamAccountName', 'Identity')]
        [string[]]$UserName
    )
    begin {
        $config = PhsConfigPath $PSCmdlet $ConfigPath
        $names = New-Object System.Collections.Generic.List[string]
    }
    process {
        foreach ($n in @($UserName)) { if ($n) { $names.Add($n) } }
    }
    end {
        $engine = $null
        try {
            $engine = (PhsLibrary).OpenEngine($config)
        }
        catch {
            $PSCmdlet.ThrowTerminatingError((PhsErrorRecord $_.Exception $config))
        }
        try {
            if ($names.Count -eq 0) {
                try {
                    $all = ConvertFrom-Json -InputObject $engine.SyncStatus()
                    foreach ($u in @($all.users)) {
                        $u.PSObject.TypeNames.Insert(0, 'PasswordHashSync.UserSyncStatus')
                        $u
                    }
                }
                catch {
                    $PSCmdlet.WriteError((PhsErrorRecord $_.Exception $config))
                }
            }
            foreach ($n in $names) {
                try {
                    PhsObject $engine.UserStatus($n) 'PasswordHashSync.UserSyncStatus'
                }
                catch {
                    $PSCmdlet.WriteError((PhsErrorRecord $_.Exception $n))
                }
            }
        }
        finally {
            $engine.Dispose()
        }
    }
}

function Register-PasswordHashSyncTask {
    <#
    .SYNOPSIS
    Schedules Invoke-PasswordHashSync to run at an interval.

    .DESCRIPTION
    On Windows, registers a scheduled task (running as SYSTEM) that starts PowerShell (pwsh.exe
    on PowerShell 7, powershell.exe on Windows PowerShell), imports this module and runs
    Invoke-PasswordHashSync -ConfigPath. On Linux with systemd, writes a service and a timer
    unit to /etc/systemd/system and enables the timer; without systemd, writes a cron entry to
    /etc/cron.d. With -WhatIf it shows what it would write and run, and changes nothing.
    Needs administrator (root) rights.

    .PARAMETER ConfigPath
    The engine's TOML config file (made absolute).

    .PARAMETER Interval
    How often to run. Default: 2 minutes, as Entra Connect's password hash sync. At least one
    minute; with cron, a whole number of minutes dividing an hour, or of hours dividing a day.

    .PARAMETER Name
    Name of the task, unit pair or cron file. Default: PasswordHashSync (lower case for systemd and cron).

    .EXAMPLE
    PS> Register-PasswordHashSyncTask -ConfigPath /etc/phsync/phsync.toml -Interval (New-TimeSpan -Minutes 5) -WhatIf

    .EXAMPLE
    PS> Register-PasswordHashSyncTask -ConfigPath C:\phsync\phsync.toml

    .OUTPUTS
    PasswordHashSync.ScheduledSync
    #>
    [CmdletBinding(SupportsShouldProcess = $true, ConfirmImpact = 'Medium')]
    [OutputType([pscustomobject])]
    param(
        [Parameter(Mandatory = $true, Position = 0)]
        [string]$ConfigPath,

        [ValidateScript({ $_ -ge [TimeSpan]::FromMinutes(1) })]
        [TimeSpan]$Interval = [TimeSpan]::FromMinutes(2),

        [ValidatePattern('^[A-Za-z0-9_.-]+$')]
        [string]$Name = 'PasswordHashSync'
    )
    $config = PhsConfigPath $PSCmdlet $ConfigPath
    $manifest = Join-Path $PSScriptRoot 'PasswordHashSync.psd1'
    $command = 'Import-Module {0}; Invoke-PasswordHashSync -ConfigPath {1}' -f (PhsQuote $manifest), (PhsQuote $config)

    if ([PasswordHashSync.PhsyncLibrary]::IsWindows) {
        $exe = if ($PSVersionTable.PSEdition -eq 'Core') { Join-Path $PSHOME 'pwsh.exe' } else { Join-Path $PSHOME 'powershell.exe' }
        $arguments = '-NoProfile -NonInteractive -ExecutionPolicy Bypass -Command "{0}"' -f $command
        if ($PSCmdlet.ShouldProcess("scheduled task \phsync\$Name (every $Interval, as SYSTEM): $exe $arguments", 'Register scheduled task')) {
            $action = New-ScheduledTaskAction -Execute $exe -Argument $arguments
            $trigger = New-ScheduledTaskTrigger -Once -At (Get-Date) -RepetitionInterval $Interval
            $principal = New-ScheduledTaskPrincipal -UserId 'SYSTEM' -LogonType ServiceAccount -RunLevel Highest
            $settings = New-ScheduledTaskSettingsSet -MultipleInstances IgnoreNew -ExecutionTimeLimit (New-TimeSpan -Hours 1) -StartWhenAvailable
            $null = Register-ScheduledTask -TaskName $Name -TaskPath '\phsync\' -Action $action -Trigger $trigger -Principal $principal -Settings $settings -Force
            [pscustomobject]@{ PSTypeName = 'PasswordHashSync.ScheduledSync'; Kind = 'ScheduledTask'; Name = "\phsync\$Name"; Interval = $Interval; Command = "$exe $arguments"; Files = @() }
        }
        return
    }

    if ([PasswordHashSync.PhsyncLibrary]::IsMacOS) {
        $PSCmdlet.ThrowTerminatingError((New-Object System.Management.Automation.ErrorRecord -ArgumentList (New-Object System.PlatformNotSupportedException -ArgumentList 'Register-PasswordHashSyncTask supports Windows (scheduled task) and Linux (systemd timer or cron); on macOS create a launchd job running Invoke-PasswordHashSync.'), 'PhsyncSchedulerNotSupported', ([System.Management.Automation.ErrorCategory]::NotImplemented), $null))
    }

    $pwsh = Join-Path $PSHOME 'pwsh'
    $unit = $Name.ToLowerInvariant()
    $seconds = [long][Math]::Floor($Interval.TotalSeconds)
    if (Test-Path -LiteralPath '/run/systemd/system' -PathType Container) {
        # systemd expands % specifiers in ExecStart: a literal % is %%.
        $exec = '{0} -NoProfile -NonInteractive -Command "{1}"' -f $pwsh, $command.Replace('%', '%%')
        $service = @(
            '[Unit]'
            'Description=Password hash synchronization (phsync PasswordHashSync module)'
            'Wants=network-online.target'
            'After=network-online.target'
            ''
            '[Service]'
            'Type=oneshot'
            "ExecStart=$exec"
            ''
        ) -join "`n"
        $timer = @(
            '[Unit]'
            "Description=Run $unit.service every $Interval"
            ''
            '[Timer]'
            'OnBootSec=1min'
            "OnUnitInactiveSec=$($seconds)s"
            'AccuracySec=10s'
            "Unit=$unit.service"
            ''
            '[Install]'
            'WantedBy=timers.target'
            ''
        ) -join "`n"
        $servicePath = "/etc/systemd/system/$unit.service"
        $timerPath = "/etc/systemd/system/$unit.timer"
        Write-Verbose "$servicePath`n$service"
        Write-Verbose "$timerPath`n$timer"
        $written = @()
        foreach ($file in @(@($servicePath, $service), @($timerPath, $timer))) {
            if ($PSCmdlet.ShouldProcess($file[0], 'Write systemd unit')) {
                [System.IO.File]::WriteAllText($file[0], $file[1], (New-Object System.Text.UTF8Encoding -ArgumentList $false))
                $written += $file[0]
            }
        }
        if ($PSCmdlet.ShouldProcess("$unit.timer", 'systemctl daemon-reload; systemctl enable --now')) {
            & systemctl daemon-reload
            if ($LASTEXITCODE -ne 0) { $PSCmdlet.ThrowTerminatingError((PhsUsageError 'systemctl daemon-reload failed.' 'PhsyncSystemctlFailed' $unit)) }
            & systemctl enable --now "$unit.timer"
            if ($LASTEXITCODE -ne 0) { $PSCmdlet.ThrowTerminatingError((PhsUsageError "systemctl enable --now $unit.timer failed." 'PhsyncSystemctlFailed' $unit)) }
            [pscustomobject]@{ PSTypeName = 'PasswordHashSync.ScheduledSync'; Kind = 'SystemdTimer'; Name = "$unit.timer"; Interval = $Interval; Command = $exec; Files = $written }
        }
        return
    }

    # cron: a whole number of minutes dividing an hour, or of hours dividing a day.
    $minutes = $Interval.TotalMinutes
    $schedule = $null
    if ($minutes -eq [Math]::Floor($minutes) -and $minutes -lt 60 -and (60 % $minutes) -eq 0) {
        $schedule = "*/$([int]$minutes) * * * *"
    }
    elseif ($minutes % 60 -eq 0 -and $minutes -le 1440 -and (1440 % $minutes) -eq 0) {
        $schedule = "0 */$([int]($minutes / 60)) * * *"
    }
    if ($null -eq $schedule) {
        $PSCmdlet.ThrowTerminatingError((PhsUsageError "cron cannot run every $Interval; use whole minutes dividing an hour or whole hours dividing a day." 'PhsyncCronInterval' $Interval))
    }
    if (-not (Test-Path -LiteralPath '/etc/cron.d' -PathType Container)) {
        $PSCmdlet.ThrowTerminatingError((PhsUsageError 'Neither systemd (/run/systemd/system) nor cron (/etc/cron.d) found.' 'PhsyncNoScheduler' $null))
    }
    # cron turns % into a newline: escape it.
    $line = '{0} root {1} -NoProfile -NonInteractive -Command "{2}"' -f $schedule, $pwsh, $command.Replace('%', '\%')
    $cronPath = "/etc/cron.d/$($unit.Replace('.', '-'))"
    Write-Verbose "$cronPath`n$line"
    if ($PSCmdlet.ShouldProcess($cronPath, "Write cron entry: $line")) {
        [System.IO.File]::WriteAllText($cronPath, "# Written by Register-PasswordHashSyncTask`n$line`n", (New-Object System.Text.UTF8Encoding -ArgumentList $false))
        [pscustomobject]@{ PSTypeName = 'PasswordHashSync.ScheduledSync'; Kind = 'Cron'; Name = $cronPath; Interval = $Interval; Command = $line; Files = @($cronPath) }
    }
}
