# Set-CloudPassword, Test-CloudSignIn, Get-CloudUser and Revoke-CloudSession against a tenant
# file made here and a tenant service (phsync cloud serve over HTTPS) that
# scripts/test-powershell started.

BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    $Scratch = New-ScratchDirectory cloud
    $Tenant = Join-Path $Scratch 'tenant.db'
    $Alice = 'alice@example.com'
    $Bob = 'bob@example.com'
    # "józef.ševčík@example.com"
    $UnicodeUpn = "j$([char]0xf3)zef.$([char]0x161)ev$([char]0x10d)$([char]0xed)k@example.com"
    foreach ($u in @($Alice, $Bob, $UnicodeUpn)) {
        Invoke-PhsyncCli cloud --tenant $Tenant user add --upn $u | Out-Null
    }
    $Strong = ConvertTo-Secure "Corr3ct-Horse-$([char]0x160)tapl$([char]0xe9)"
    $Strong2 = ConvertTo-Secure 'Battery-Stap1e-Two!'
    $Strong3 = ConvertTo-Secure 'Third-Str0ng-Passphrase'
    $Weak = ConvertTo-Secure 'short'

    $Url = Get-FixtureValue PHSYNC_PS_REMOTE_URL
    $TokenFile = Get-FixtureValue PHSYNC_PS_REMOTE_TOKEN
    $BogusTokenFile = Get-FixtureValue PHSYNC_PS_REMOTE_BOGUS_TOKEN
    $CaFile = Get-FixtureValue PHSYNC_PS_REMOTE_CA
    $RemoteUser = Get-FixtureValue PHSYNC_PS_REMOTE_USER
}

Describe 'Set-CloudPassword' {
    It 'resets a password by name and returns a CloudPasswordResult' {
        $r = Set-CloudPassword -Tenant $Tenant -UserPrincipalName $Alice -Password $Strong
        $r | Should -BeOfType ([PasswordHashSync.CloudPasswordResult])
        $r.UserPrincipalName | Should -Be $Alice
        $r.Result | Should -Be 'applied'
        $r.ChangedAt | Should -BeOfType ([DateTimeOffset])
        $r.ForceChangePasswordNextSignIn | Should -BeFalse
        (Test-CloudSignIn -Tenant $Tenant $Alice $Strong).Succeeded | Should -BeTrue
    }

    It 'binds user and password by position' {
        (Set-CloudPassword $Bob $Strong2 -Tenant $Tenant).Result | Should -Be 'applied'
        (Test-CloudSignIn $Bob $Strong2 -Tenant $Tenant).Succeeded | Should -BeTrue
    }

    It 'takes UPN and Password properties from the pipeline, one result per object' {
        $out = @(
            [pscustomobject]@{ UPN = $Alice; Password = $Strong2 },
            [pscustomobject]@{ UserPrincipalName = $Bob; Password = $Strong3 }
        ) | Set-CloudPassword -Tenant $Tenant
        $out.Count | Should -Be 2
        $out.UserPrincipalName | Should -Be @($Alice, $Bob)
        (Test-CloudSignIn $Alice $Strong2 -Tenant $Tenant).Succeeded | Should -BeTrue
        (Test-CloudSignIn $Bob $Strong3 -Tenant $Tenant).Succeeded | Should -BeTrue
    }

    It '-WhatIf changes nothing: the old password still signs in' {
        Set-CloudPassword $Alice $Strong -Tenant $Tenant | Out-Null
        $out = Set-CloudPassword $Alice $Strong3 -Tenant $Tenant -WhatIf
        $out | Should -BeNullOrEmpty
        (Test-CloudSignIn $Alice $Strong -Tenant $Tenant).Succeeded | Should -BeTrue
        (Test-CloudSignIn $Alice $Strong3 -Tenant $Tenant).Result | Should -Be 'invalid_credentials'
    }

    It '-ForceChangePasswordNextSignIn makes the next sign-in must_change_password' {
        $r = Set-CloudPassword $Bob $Strong -Tenant $Tenant -ForceChangePasswordNextSignIn
        $r.ForceChangePasswordNextSignIn | Should -BeTrue
        $s = Test-CloudSignIn $Bob $Strong -Tenant $Tenant
        $s.Result | Should -Be 'must_change_password'
        $s.Succeeded | Should -BeFalse
        (Get-CloudUser $Bob -Tenant $Tenant).ForceChangePasswordNextSignIn | Should -BeTrue
    }

    It 'reports a password-policy violation as PHS_E_PASSWORD_POLICY / SecurityError and goes on with the pipeline' {
        $out = @(
            [pscustomobject]@{ UPN = $Alice; Password = $Weak },
            [pscustomobject]@{ UPN = $Bob; Password = $Strong2 }
        ) | Set-CloudPassword -Tenant $Tenant -ErrorAction SilentlyContinue -ErrorVariable err
        $err.Count | Should -Be 1
        $err[0].FullyQualifiedErrorId | Should -BeLike 'PHS_E_PASSWORD_POLICY,*'
        $err[0].CategoryInfo.Category | Should -Be 'SecurityError'
        $err[0].TargetObject | Should -Be $Alice
        @($out).Count | Should -Be 1
        $out.UserPrincipalName | Should -Be $Bob
        { Set-CloudPassword $Alice $Weak -Tenant $Tenant -ErrorAction Stop } | Should -Throw -ErrorId 'PHS_E_PASSWORD_POLICY,*'
    }

    It 'reports an unknown user as PHS_E_NOT_FOUND / ObjectNotFound' {
        Set-CloudPassword 'nobody@example.com' $Strong -Tenant $Tenant -ErrorAction SilentlyContinue -ErrorVariable err | Should -BeNullOrEmpty
        $err[0].FullyQualifiedErrorId | Should -BeLike 'PHS_E_NOT_FOUND,*'
        $err[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
    }

    It 'round-trips a non-ASCII UPN and password' {
        (Set-CloudPassword $UnicodeUpn $Strong -Tenant $Tenant).UserPrincipalName | Should -BeExactly $UnicodeUpn
        (Test-CloudSignIn $UnicodeUpn $Strong -Tenant $Tenant).Succeeded | Should -BeTrue
        (Get-CloudUser $UnicodeUpn -Tenant $Tenant).UserPrincipalName | Should -BeExactly $UnicodeUpn
    }

    It 'uses $env:PHSYNC_TENANT without -Tenant, and stops without either' {
        $saved = $env:PHSYNC_TENANT
        try {
            $env:PHSYNC_TENANT = $Tenant
            (Set-CloudPassword $Alice $Strong).Result | Should -Be 'applied'
            $env:PHSYNC_TENANT = $null
            $e = Get-TerminatingError { Set-CloudPassword $Alice $Strong }
            $e | Should -Not -BeNullOrEmpty
            $e.FullyQualifiedErrorId | Should -BeLike 'PhsyncNoTenant,*'
        } finally {
            $env:PHSYNC_TENANT = $saved
        }
    }
}

Describe 'Test-CloudSignIn' {
    BeforeAll {
        Set-CloudPassword $Alice $Strong -Tenant $Tenant | Out-Null
    }

    It 'signs in a PSCredential from the pipeline (UserName binds UserPrincipalName)' {
        $r = New-Object System.Management.Automation.PSCredential($Alice, $Strong) | Test-CloudSignIn -Tenant $Tenant
        $r | Should -BeOfType ([PasswordHashSync.SignInResult])
        $r.UserPrincipalName | Should -Be $Alice
        $r.Result | Should -Be 'success'
        $r.Succeeded | Should -BeTrue
        $r.SessionExpiresAt | Should -BeOfType ([DateTimeOffset])
    }

    It 'returns a refusal as a result, not an error' {
        $r = Test-CloudSignIn $Alice $Strong2 -Tenant $Tenant -ErrorVariable err
        $err | Should -BeNullOrEmpty
        $r.Result | Should -Be 'invalid_credentials'
        $r.Succeeded | Should -BeFalse
        (Test-CloudSignIn 'nobody@example.com' $Strong -Tenant $Tenant).Result | Should -Be 'invalid_credentials'
    }

    It 'never returns the session token' {
        $r = Test-CloudSignIn $Alice $Strong -Tenant $Tenant
        $r.PSObject.Properties.Name | Should -Not -Match 'token'
    }
}

Describe 'Get-CloudUser' {
    It 'returns a cloud user by name, position and pipeline' {
        $u = Get-CloudUser -UserPrincipalName $Alice -Tenant $Tenant
        $u | Should -BeOfType ([PasswordHashSync.CloudUser])
        $u.UserPrincipalName | Should -Be $Alice
        $u.Origin | Should -Be 'cloud'
        $u.HasPassword | Should -BeTrue
        $u.PasswordSource | Should -Be 'cloud'
        $u.CreatedAt | Should -BeOfType ([DateTimeOffset])
        (Get-CloudUser $Alice -Tenant $Tenant).UserPrincipalName | Should -Be $Alice
        (@($Alice, $Bob) | Get-CloudUser -Tenant $Tenant).UserPrincipalName | Should -Be @($Alice, $Bob)
        ([pscustomobject]@{ UPN = $Bob } | Get-CloudUser -Tenant $Tenant).UserPrincipalName | Should -Be $Bob
    }

    It 'never shows a digest' {
        $json = Get-CloudUser $Alice, $Bob -Tenant $Tenant | ConvertTo-Json -Depth 5
        $json | Should -Not -Match 'PPH1'
        $json | Should -Not -Match '[0-9a-fA-F]{32}'
    }

    It 'reports an unknown user as PHS_E_NOT_FOUND / ObjectNotFound, non-terminating' {
        $out = Get-CloudUser 'nobody@example.com' -Tenant $Tenant -ErrorAction SilentlyContinue -ErrorVariable err
        $out | Should -BeNullOrEmpty
        $err.Count | Should -Be 1
        $err[0].FullyQualifiedErrorId | Should -BeLike 'PHS_E_NOT_FOUND*'
        $err[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
        $err[0].TargetObject | Should -Be 'nobody@example.com'
        # One bad name does not stop the others.
        $out = @('nobody@example.com', $Alice) | Get-CloudUser -Tenant $Tenant -ErrorAction SilentlyContinue -ErrorVariable err2
        $out.UserPrincipalName | Should -Be $Alice
        $err2.Count | Should -Be 1
    }

    It '-ErrorAction Stop makes it terminating' {
        $e = Get-TerminatingError { Get-CloudUser 'nobody@example.com' -Tenant $Tenant -ErrorAction Stop }
        $e | Should -Not -BeNullOrEmpty
        $e.FullyQualifiedErrorId | Should -BeLike 'PHS_E_NOT_FOUND*'
        $e.CategoryInfo.Category | Should -Be 'ObjectNotFound'
    }

    It '-ErrorAction SilentlyContinue suppresses it' {
        { Get-CloudUser 'nobody@example.com' -Tenant $Tenant -ErrorAction SilentlyContinue } | Should -Not -Throw
        Get-CloudUser 'nobody@example.com' -Tenant $Tenant -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        { Get-CloudUser 'nobody@example.com' -Tenant $Tenant -ErrorAction Ignore } | Should -Not -Throw
    }

    It 'never shows the password of a database URL, in the error or its target' {
        $url = 'postgres://phsync:Db-s3cret-pw@127.0.0.1:1/tenant'
        $e = Get-TerminatingError { Get-CloudUser $Alice -Tenant $url }
        $e | Should -Not -BeNullOrEmpty
        $shown = "$e $($e.TargetObject) $($e.CategoryInfo) $($e.Exception.Message)"
        $shown | Should -Not -Match 'Db-s3cret-pw'
        "$($e.TargetObject)" | Should -Be 'postgres://phsync:***@127.0.0.1:1/tenant'
    }

    It 'stops with PHS_E_STORAGE when the tenant file cannot be opened' {
        $e = Get-TerminatingError { Get-CloudUser $Alice -Tenant (Join-Path $TestDrive 'no-such-dir/t.db') }
        $e | Should -Not -BeNullOrEmpty
        $e.FullyQualifiedErrorId | Should -BeLike 'PHS_E_STORAGE,*'
    }
}

Describe 'Revoke-CloudSession' {
    BeforeAll {
        $Carol = 'carol@example.com'
        $Dave = 'dave@example.com'
        foreach ($u in @($Carol, $Dave)) {
            Invoke-PhsyncCli cloud --tenant $Tenant user add --upn $u | Out-Null
            Set-CloudPassword $u $Strong -Tenant $Tenant | Out-Null   # a reset ends any session
        }
        # n successful sign-ins: n open sessions.
        function New-Sessions([string]$Upn, [int]$Count) {
            for ($i = 0; $i -lt $Count; $i++) {
                (Test-CloudSignIn $Upn $Strong -Tenant $Tenant).Succeeded | Should -BeTrue
            }
        }
    }

    It 'ends every session of a user and returns how many, as a CloudSessionRevocation' {
        New-Sessions $Carol 2
        $r = Revoke-CloudSession -UserPrincipalName $Carol -Tenant $Tenant
        $r | Should -BeOfType ([PasswordHashSync.CloudSessionRevocation])
        $r.UserPrincipalName | Should -Be $Carol
        $r.Revoked | Should -Be 2
        # They are gone: the cmdlet and the CLI both find none left.
        (Revoke-CloudSession $Carol -Tenant $Tenant).Revoked | Should -Be 0
        $cli = Invoke-PhsyncCli cloud --tenant $Tenant session revoke --upn $Carol --json | ConvertFrom-Json
        $cli.revoked | Should -Be 0
        # Only the sessions ended: the password still signs in.
        (Test-CloudSignIn $Carol $Strong -Tenant $Tenant).Succeeded | Should -BeTrue
        (Revoke-CloudSession $Carol -Tenant $Tenant).Revoked | Should -Be 1
    }

    It 'counts the same sessions the CLI sees' {
        New-Sessions $Carol 3
        $cli = Invoke-PhsyncCli cloud --tenant $Tenant session revoke --upn $Carol --json | ConvertFrom-Json
        $cli.revoked | Should -Be 3
        New-Sessions $Carol 1
        (Revoke-CloudSession $Carol -Tenant $Tenant).Revoked | Should -Be 1
    }

    It 'an admin reset already ended the sessions' {
        New-Sessions $Carol 2
        Set-CloudPassword $Carol $Strong -Tenant $Tenant | Out-Null
        (Revoke-CloudSession $Carol -Tenant $Tenant).Revoked | Should -Be 0
    }

    It '-WhatIf ends nothing and writes nothing' {
        New-Sessions $Carol 2
        Revoke-CloudSession $Carol -Tenant $Tenant -WhatIf | Should -BeNullOrEmpty
        @($Carol, $Dave) | Revoke-CloudSession -Tenant $Tenant -WhatIf | Should -BeNullOrEmpty
        (Revoke-CloudSession $Carol -Tenant $Tenant).Revoked | Should -Be 2
    }

    It 'takes users from the pipeline: strings, Get-CloudUser objects and UPN properties, one result each' {
        New-Sessions $Carol 1
        New-Sessions $Dave 2
        $out = @($Carol, $Dave) | Revoke-CloudSession -Tenant $Tenant
        $out.UserPrincipalName | Should -Be @($Carol, $Dave)
        $out.Revoked | Should -Be @(1, 2)
        New-Sessions $Dave 1
        (Get-CloudUser $Dave -Tenant $Tenant | Revoke-CloudSession -Tenant $Tenant).Revoked | Should -Be 1
        New-Sessions $Carol 1
        ([pscustomobject]@{ UPN = $Carol } | Revoke-CloudSession -Tenant $Tenant).Revoked | Should -Be 1
        New-Sessions $Dave 1
        (New-Object System.Management.Automation.PSCredential($Dave, $Strong) | Revoke-CloudSession -Tenant $Tenant).Revoked | Should -Be 1
    }

    It 'reports an unknown user as PHS_E_NOT_FOUND / ObjectNotFound, non-terminating' {
        New-Sessions $Carol 1
        $out = @('nobody@example.com', $Carol) | Revoke-CloudSession -Tenant $Tenant -ErrorAction SilentlyContinue -ErrorVariable err
        $err.Count | Should -Be 1
        $err[0].FullyQualifiedErrorId | Should -BeLike 'PHS_E_NOT_FOUND,*'
        $err[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
        $err[0].TargetObject | Should -Be 'nobody@example.com'
        "$($err[0])" | Should -Match 'nobody@example.com'
        @($out).Count | Should -Be 1
        $out.UserPrincipalName | Should -Be $Carol
        $out.Revoked | Should -Be 1
        $e = Get-TerminatingError { Revoke-CloudSession 'nobody@example.com' -Tenant $Tenant -ErrorAction Stop }
        $e.FullyQualifiedErrorId | Should -BeLike 'PHS_E_NOT_FOUND,*'
    }

    It 'reports a malformed UPN as PHS_E_INVALID_ARGUMENT / InvalidArgument' {
        Revoke-CloudSession 'no-at-sign' -Tenant $Tenant -ErrorAction SilentlyContinue -ErrorVariable err | Should -BeNullOrEmpty
        $err[0].FullyQualifiedErrorId | Should -BeLike 'PHS_E_INVALID_ARGUMENT,*'
        $err[0].CategoryInfo.Category | Should -Be 'InvalidArgument'
    }

    It 'has ConfirmImpact Medium, like the other cmdlets that change state' {
        $cmd = Get-Command Revoke-CloudSession
        $attr = $cmd.ImplementingType.GetCustomAttributes([System.Management.Automation.CmdletAttribute], $false)[0]
        $attr.SupportsShouldProcess | Should -BeTrue
        $attr.ConfirmImpact | Should -Be 'Medium'
        $cmd.Parameters.ContainsKey('WhatIf') | Should -BeTrue
        $cmd.Parameters.ContainsKey('Confirm') | Should -BeTrue
    }

    It 'shows UserPrincipalName and Revoked in its default table view' {
        New-Sessions $Carol 2
        $text = Revoke-CloudSession $Carol -Tenant $Tenant | Format-Table | Out-String
        $text | Should -Match 'UserPrincipalName\s+Revoked'
        $text | Should -Match ([regex]::Escape($Carol) + '\s+2')
    }
}

Describe 'A tenant service (phsync cloud serve over HTTPS)' {
    It 'resets a password and signs in with -TokenFile and -CaFile' {
        $remote = @{ Tenant = $Url; TokenFile = $TokenFile; CaFile = $CaFile }
        $r = Set-CloudPassword $RemoteUser $Strong @remote
        $r.Result | Should -Be 'applied'
        (Test-CloudSignIn $RemoteUser $Strong @remote).Succeeded | Should -BeTrue
        (Test-CloudSignIn $RemoteUser $Strong2 @remote).Result | Should -Be 'invalid_credentials'
        $u = Get-CloudUser $RemoteUser @remote
        $u.PasswordSource | Should -Be 'cloud'
        $u | ConvertTo-Json | Should -Not -Match 'PPH1'
    }

    It 'ends a user''s sessions with -TokenFile and -CaFile' {
        $remote = @{ Tenant = $Url; TokenFile = $TokenFile; CaFile = $CaFile }
        Set-CloudPassword $RemoteUser $Strong @remote | Out-Null
        (Test-CloudSignIn $RemoteUser $Strong @remote).Succeeded | Should -BeTrue
        (Test-CloudSignIn $RemoteUser $Strong @remote).Succeeded | Should -BeTrue
        $r = Revoke-CloudSession $RemoteUser @remote
        $r | Should -BeOfType ([PasswordHashSync.CloudSessionRevocation])
        $r.Revoked | Should -Be 2
        (Revoke-CloudSession $RemoteUser @remote).Revoked | Should -Be 0
        Revoke-CloudSession 'nobody@example.com' @remote -ErrorAction SilentlyContinue -ErrorVariable err | Out-Null
        $err[0].FullyQualifiedErrorId | Should -BeLike 'PHS_E_NOT_FOUND,*'
    }

    It 'takes the token and CA files from $env:PHSYNC_TOKEN_FILE and $env:PHSYNC_CA_FILE' {
        $saved = $env:PHSYNC_TOKEN_FILE, $env:PHSYNC_CA_FILE
        try {
            $env:PHSYNC_TOKEN_FILE = $TokenFile
            $env:PHSYNC_CA_FILE = $CaFile
            (Get-CloudUser $RemoteUser -Tenant $Url).UserPrincipalName | Should -Be $RemoteUser
        } finally {
            $env:PHSYNC_TOKEN_FILE, $env:PHSYNC_CA_FILE = $saved
        }
    }

    It 'reports policy and unknown-user failures with the same ids as a tenant file' {
        $remote = @{ Tenant = $Url; TokenFile = $TokenFile; CaFile = $CaFile }
        Set-CloudPassword $RemoteUser $Weak @remote -ErrorAction SilentlyContinue -ErrorVariable err | Out-Null
        $err[0].FullyQualifiedErrorId | Should -BeLike 'PHS_E_PASSWORD_POLICY,*'
        $err[0].CategoryInfo.Category | Should -Be 'SecurityError'
        Get-CloudUser 'nobody@example.com' @remote -ErrorAction SilentlyContinue -ErrorVariable err2 | Out-Null
        $err2[0].FullyQualifiedErrorId | Should -BeLike 'PHS_E_NOT_FOUND,*'
    }

    It 'stops with PHS_E_ACCESS_DENIED / PermissionDenied for a bogus token' {
        $e = Get-TerminatingError { Get-CloudUser $RemoteUser -Tenant $Url -TokenFile $BogusTokenFile -CaFile $CaFile }
        $e | Should -Not -BeNullOrEmpty
        $e.FullyQualifiedErrorId | Should -BeLike 'PHS_E_ACCESS_DENIED,*'
        $e.CategoryInfo.Category | Should -Be 'PermissionDenied'
        "$e" | Should -Not -Match "not-a-token" -Because "a token never reaches a message"
    }

    It 'stops with PHS_E_UNREACHABLE / ConnectionError when nothing listens' {
        $e = Get-TerminatingError { Get-CloudUser $RemoteUser -Tenant 'https://127.0.0.1:9' -TokenFile $TokenFile -CaFile $CaFile }
        $e.FullyQualifiedErrorId | Should -BeLike 'PHS_E_UNREACHABLE,*'
        $e.CategoryInfo.Category | Should -Be 'ConnectionError'
    }

    It 'stops with PhsyncNoTokenFile when a service has no token file' {
        $saved = $env:PHSYNC_TOKEN_FILE
        try {
            $env:PHSYNC_TOKEN_FILE = $null
            $e = Get-TerminatingError { Get-CloudUser $RemoteUser -Tenant $Url -CaFile $CaFile }
            $e.FullyQualifiedErrorId | Should -BeLike 'PhsyncNoTokenFile,*'
        } finally {
            $env:PHSYNC_TOKEN_FILE = $saved
        }
    }
}
