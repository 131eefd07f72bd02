# Get-CloudUserRisk and CloudUser.Risks (issue 18) after a real sync against the AD lab DC:
# a copy of the OU=Demo engine config with [audit] leaked_hashes (a list written here holding
# demo1's NT hash) and block_leaked_sign_in, and a tenant file of its own. Reads the lab only.

BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    $Scratch = New-ScratchDirectory risk
    $Demo1 = Get-LabAccount (Get-FixtureValue PHSYNC_PS_ENGINE_USER)
    $Config = Copy-EngineConfig (Get-FixtureValue PHSYNC_PS_ENGINE_CONFIG) (Join-Path $Scratch 'engine')
    $Tenant = Join-Path (Split-Path $Config) 'tenant.db'
    # HIBP's format: HASH:COUNT, sorted, CRLF; demo1's hash between two others.
    $Leaked = ConvertTo-NTHash -Password (ConvertTo-Secure $Demo1.Password)
    $lines = @('00000000000000000000000000000001:3', "${Leaked}:4242", 'FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFE:1') | Sort-Object
    [IO.File]::WriteAllText((Join-Path (Split-Path $Config) 'pwned.txt'), (($lines -join "`r`n") + "`r`n"))
    Add-Content -Path $Config -Value "`n[audit]`nleaked_hashes = `"pwned.txt`"`nblock_leaked_sign_in = true`n"
    $Cycle = Invoke-PasswordHashSync -ConfigPath $Config -Full
}

Describe 'Get-CloudUserRisk' {
    It 'lists the synced user whose password is in the leaked list, with the breach count' {
        $Cycle.Ok | Should -BeTrue
        $risks = @(Get-CloudUserRisk -Tenant $Tenant)
        $risks.Count | Should -Be 1
        $r = $risks[0]
        $r | Should -BeOfType ([PasswordHashSync.CloudUserRisk])
        $r.UserPrincipalName | Should -Be $Demo1.Upn
        $r.Kind | Should -Be 'leaked_credentials'
        $r.BreachCount | Should -Be 4242
        $r.DetectedAt | Should -BeOfType ([DateTimeOffset])
        $r.SourceAnchor | Should -Not -BeNullOrEmpty
    }

    It 'gives the named users'' marks, from the pipeline too, and none for a clean user' {
        (Get-CloudUserRisk $Demo1.Upn -Tenant $Tenant).Kind | Should -Be 'leaked_credentials'
        $other = ($Cycle.Users | Where-Object { $_.UserPrincipalName -ne $Demo1.Upn }).UserPrincipalName
        @(Get-CloudUserRisk $other -Tenant $Tenant).Count | Should -Be 0
        (Get-CloudUser $Demo1.Upn -Tenant $Tenant | Get-CloudUserRisk -Tenant $Tenant).BreachCount | Should -Be 4242
    }

    It 'shows the marks on Get-CloudUser, and the policy at sign-in' {
        $u = Get-CloudUser $Demo1.Upn -Tenant $Tenant
        $u.Risks.Count | Should -Be 1
        $u.Risks[0].Kind | Should -Be 'leaked_credentials'
        $u.ForceChangePasswordNextSignIn | Should -BeTrue
        (Test-CloudSignIn $Demo1.Upn (ConvertTo-Secure $Demo1.Password) -Tenant $Tenant).Result | Should -Be 'must_change_password'
    }

    It 'never shows a hash' {
        $json = @(Get-CloudUserRisk -Tenant $Tenant) + @(Get-CloudUser $Demo1.Upn -Tenant $Tenant) | ConvertTo-Json -Depth 5
        $json | Should -Not -Match $Leaked
        $json | Should -Not -Match '[0-9a-fA-F]{32}'
    }

    It 'reports an unknown user as PHS_E_NOT_FOUND, non-terminating' {
        $out = Get-CloudUserRisk 'nobody@example.com' -Tenant $Tenant -ErrorAction SilentlyContinue -ErrorVariable err
        $out | Should -BeNullOrEmpty
        $err.Count | Should -Be 1
        $err[0].FullyQualifiedErrorId | Should -BeLike 'PHS_E_NOT_FOUND*'
    }

    It 'is cleared by an administrator reset' {
        Set-CloudPassword $Demo1.Upn (ConvertTo-Secure 'Reset-Unlisted-Passw0rd!') -Tenant $Tenant | Out-Null
        @(Get-CloudUserRisk -Tenant $Tenant).Count | Should -Be 0
        (Get-CloudUser $Demo1.Upn -Tenant $Tenant).Risks.Count | Should -Be 0
    }
}
