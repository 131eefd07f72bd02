# Test-PasswordHashSyncQuality against the AD lab DC: an OU of its own with an account for
# every finding (Samba stores no LM hash and always AES keys itself: two accounts get those
# through scripts/ad-lab/legacy-credentials), a leaked-hash list in the HIBP format and a
# weak-password dictionary; exactly the expected accounts per finding, typed objects, the
# -Summary counts, errors as records, and no hash in any output.

BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    $Config = Get-FixtureValue PHSYNC_PS_ENGINE_CONFIG
    $BaseDn = Get-FixtureValue PHSYNC_LAB_BASE_DN
    $LdapsUrl = Get-FixtureValue PHSYNC_LAB_LDAPS_URL
    $AdminDn = Get-FixtureValue PHSYNC_LAB_ADMIN_DN
    $AdminPwFile = Get-FixtureValue PHSYNC_LAB_ADMIN_PASSWORD_FILE
    $CaFile = Get-FixtureValue PHSYNC_LAB_CA_FILE
    $DnsDomain = Get-FixtureValue PHSYNC_LAB_DNS_DOMAIN
    $Scratch = New-ScratchDirectory audit

    $n = [DateTimeOffset]::UtcNow.ToUnixTimeMilliseconds() % 100000
    $S = 'p{0:d5}' -f $n
    $Ou = "OU=phsync-i18a-ps-$PID-$n,$BaseDn"
    function Invoke-Ldap([string]$Tool, [string]$Ldif, [string[]]$Extra = @()) {
        $env:LDAPTLS_CACERT = $CaFile
        $out = $Ldif | & $Tool -x -H $LdapsUrl -D $AdminDn -y $AdminPwFile @Extra 2>&1
        if ($LASTEXITCODE -ne 0) { throw "$Tool failed: $out" }
    }
    function UnicodePwd([string]$Password) { [Convert]::ToBase64String([Text.Encoding]::Unicode.GetBytes('"' + $Password + '"')) }

    $Shared = "Shared-$S-pw"; $Leaked = "Leaked-$S-pw"; $Weak = "Summer$S!"
    $Passwords = @($Shared, $Leaked, $Weak, "Nexp-$S-pw", "Rev-$S-pw", "Clean-$S-pw", "Lm-$S-pw", "Old-$S-pw")
    # name, password (or $null), userAccountControl, extra LDIF
    $Accounts = @(
        @("shareA$S", $Shared, 512, ''), @("shareB$S", $Shared, 512, ''),
        @("nopw$S", $null, 544, ''), @("admin$S", $Leaked, 512, "adminCount: 1`n"),
        @("weak$S", $Weak, 512, ''), @("nexp$S", "Nexp-$S-pw", 66048, ''),
        @("rev$S", "Rev-$S-pw", 640, ''), @("clean$S", "Clean-$S-pw", 512, ''),
        @("lmhash$S", "Lm-$S-pw", 512, ''), @("oldpw$S", "Old-$S-pw", 512, '')
    )
    $ldif = @("dn: $Ou`nobjectClass: organizationalUnit`n")
    foreach ($a in $Accounts) {
        $pw = if ($a[1]) { "unicodePwd:: $(UnicodePwd $a[1])`n" } else { '' }
        $ldif += "dn: CN=$($a[0]),$Ou`nobjectClass: user`nsAMAccountName: $($a[0])`nuserPrincipalName: $($a[0])@$DnsDomain`n$($pw)userAccountControl: $($a[2])`n$($a[3])"
    }
    Invoke-Ldap ldapadd ($ldif -join "`n")
    $legacy = Join-Path $PSScriptRoot '../../scripts/ad-lab/legacy-credentials'
    $out = & /usr/bin/python3 $legacy --smb-conf (Get-FixtureValue PHSYNC_LAB_SMB_CONF) --lm-hash "lmhash$S" --without-aes "oldpw$S" 2>&1
    if ($LASTEXITCODE -ne 0) { throw "legacy-credentials failed: $out" }

    $AuditConfig = Copy-EngineConfig $Config (Join-Path $Scratch 'engine') -Replace @{ "OU=Demo,$BaseDn" = $Ou }

    # HIBP format: upper-case hash, ':', count, CRLF; sorted. The leaked password among others.
    $lines = [System.Collections.Generic.List[string]]::new()
    $lines.Add("$(ConvertTo-NTHash -Password (ConvertTo-Secure $Leaked)):4242")
    foreach ($i in 1..200) { $lines.Add("$(ConvertTo-NTHash -Password (ConvertTo-Secure "unrelated-$S-$i")):$i") }
    $sorted = $lines.ToArray()
    [Array]::Sort($sorted, [StringComparer]::Ordinal)
    $LeakedFile = Join-Path $Scratch 'leaked-ntlm.txt'
    [IO.File]::WriteAllText($LeakedFile, ($sorted -join "`r`n") + "`r`n")
    $WeakFile = Join-Path $Scratch 'weak.txt'
    [IO.File]::WriteAllText($WeakFile, "password`r`n$Weak`r`nletmein`r`n")
    $HashForms = foreach ($p in $Passwords) { $h = ConvertTo-NTHash -Password (ConvertTo-Secure $p); $h; $h.ToLowerInvariant() }

    $Expected = @{
        empty_password            = @("nopw$S")
        weak_password             = @("weak$S")
        leaked_password           = @("admin$S")
        shared_password           = @("shareA$S", "shareB$S")
        default_computer_password = @()
        lm_hash_present           = @("lmhash$S")
        password_not_required     = @("nopw$S")
        reversible_encryption     = @("rev$S")
        aes_keys_missing          = @("oldpw$S")
        password_never_expires    = @("nexp$S")
        admin_with_finding        = @("admin$S")
    }
    function Assert-NoHash([string]$Text) {
        foreach ($h in $HashForms) { $Text.Contains($h) | Should -BeFalse -Because 'no output may contain an NT hash' }
        $Text | Should -Not -Match '[0-9A-Fa-f]{32}'
    }
}

AfterAll {
    if ($Ou) { try { Invoke-Ldap ldapdelete '' @('-r', $Ou) } catch { Write-Warning "cleanup: $_" } }
}

Describe 'Test-PasswordHashSyncQuality' {
    BeforeAll {
        $Found = @(Test-PasswordHashSyncQuality -ConfigPath $AuditConfig -LeakedHashesPath $LeakedFile -WeakPasswordsPath $WeakFile)
    }

    It 'names exactly the expected accounts per finding' {
        foreach ($k in $Expected.Keys) {
            $got = @($Found | Where-Object Finding -eq $k | ForEach-Object SamAccountName | Sort-Object)
            $want = @($Expected[$k] | Sort-Object)
            ($got -join ',') | Should -Be ($want -join ',') -Because $k
        }
    }

    It 'writes typed objects with the breach count, the group and the admin''s findings' {
        $Found | ForEach-Object { $_ | Should -BeOfType ([PasswordHashSync.PasswordQualityFinding]) }
        $leak = $Found | Where-Object Finding -eq leaked_password
        $leak.BreachCount | Should -Be 4242
        $leak.UserPrincipalName | Should -Be "admin$S@$DnsDomain"
        $leak.DistinguishedName | Should -Be "CN=admin$S,$Ou"
        @($Found | Where-Object Finding -eq shared_password | ForEach-Object Group | Sort-Object -Unique) | Should -Be @(1)
        ($Found | Where-Object Finding -eq admin_with_finding).Findings | Should -Be @('leaked_password')
    }

    It 'never shows a hash: objects, table view, list view, JSON' {
        Assert-NoHash ($Found | Format-Table -AutoSize | Out-String -Width 400)
        Assert-NoHash ($Found | Format-List * | Out-String -Width 400)
        Assert-NoHash ($Found | ConvertTo-Json -Depth 4)
    }

    It 'groups its table view by finding' {
        $table = $Found | Out-String -Width 300
        $table | Should -Match 'Finding: Password in the leaked-hash list'
        $table | Should -Match 'seen 4242 times'
    }

    It '-Summary gives one count per finding, lists not given are not checked' {
        $sum = @(Test-PasswordHashSyncQuality -ConfigPath $AuditConfig -Summary)
        $sum.Count | Should -Be 11
        $sum | ForEach-Object { $_ | Should -BeOfType ([PasswordHashSync.PasswordQualitySummary]) }
        ($sum | Where-Object Finding -eq weak_password).Checked | Should -BeFalse
        ($sum | Where-Object Finding -eq shared_password).Groups | Should -Be 1
        ($sum | Where-Object Finding -eq empty_password).Count | Should -Be 1
        ($sum | Select-Object -First 1).AccountsAudited | Should -Be 10
        ($sum | Select-Object -First 1).Scope | Should -Be 'sync_scope'
    }

    It 'reports an unusable list as an InvalidArgument error naming the file' {
        $missing = Join-Path $Scratch 'no-such-list.txt'
        $err = $null
        try { Test-PasswordHashSyncQuality -ConfigPath $AuditConfig -LeakedHashesPath $missing -ErrorAction Stop } catch { $err = $_ }
        $err | Should -Not -BeNullOrEmpty
        $err.FullyQualifiedErrorId | Should -BeLike 'PHS_E_INVALID_ARGUMENT*'
        $err.CategoryInfo.Category | Should -Be 'InvalidArgument'
        $err.Exception.Message | Should -Match ([regex]::Escape($missing))
        Assert-NoHash $err.Exception.Message
    }

    It 'has help with examples' {
        $help = Get-Help Test-PasswordHashSyncQuality -Full
        $help.Synopsis | Should -Match 'password quality'
        @($help.Examples.Example).Count | Should -BeGreaterOrEqual 2
        (Get-Command Test-PasswordHashSyncQuality).OutputType.Type | Should -Contain ([PasswordHashSync.PasswordQualityFinding])
    }
}
