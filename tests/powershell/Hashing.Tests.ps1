# ConvertTo-NTHash, ConvertTo-PasswordHashSyncDigest and Test-PasswordHashSyncDigest against
# the native library: known vectors, binding by name, position and pipeline, and errors.

BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    $Password = ConvertTo-Secure 'Pa$$w0rd'
    $NTHash = '92937945B518814341DE3F726500D4FF'
    $Salt = '181a3024085fcee2f70e'
    $Vector = 'v1;PPH1_MD4,181a3024085fcee2f70e,1000,b39525c3bc72a1136fcf7c8a338e0c14313d0450d1a4c98ef0a6ddada3bc5b0a;'
    # "žluťoučký kůň": UTF-16 reaches the library unchanged.
    $Unicode = ConvertTo-Secure "$([char]0x17e)lu$([char]0x165)ou$([char]0x10d)k$([char]0xfd) k$([char]0x16f)$([char]0x148)"
    $UnicodeNTHash = '0D90FB43740BE81B67E6A79A113817C4'
}

Describe 'ConvertTo-NTHash' {
    It 'hashes Pa$$w0rd by name' {
        ConvertTo-NTHash -Password $Password | Should -BeExactly $NTHash
    }

    It 'binds the password by position' {
        ConvertTo-NTHash $Password | Should -BeExactly $NTHash
    }

    It 'takes SecureStrings from the pipeline, one hash each' {
        $out = @($Password, $Unicode | ConvertTo-NTHash)
        $out | Should -Be @($NTHash, $UnicodeNTHash)
    }

    It 'takes the Password property from the pipeline' {
        [pscustomobject]@{ Password = $Password } | ConvertTo-NTHash | Should -BeExactly $NTHash
    }

    It 'hashes a non-ASCII password as UTF-16' {
        ConvertTo-NTHash $Unicode | Should -BeExactly $UnicodeNTHash
    }

    It 'hashes the empty password' {
        ConvertTo-NTHash ([securestring]::new()) | Should -BeExactly '31D6CFE0D16AE931B73C59D7E0C089C0'
    }

    It 'refuses a plain-text string' {
        { ConvertTo-NTHash -Password 'Pa$$w0rd' } | Should -Throw -ExceptionType ([System.Management.Automation.ParameterBindingException])
    }

    It 'reports a password over 512 characters as PHS_E_PASSWORD_TOO_LONG' {
        $out = ConvertTo-NTHash (ConvertTo-Secure ('a' * 513)) -ErrorAction SilentlyContinue -ErrorVariable err
        $out | Should -BeNullOrEmpty
        $err.Count | Should -Be 1
        $err[0].FullyQualifiedErrorId | Should -BeLike 'PHS_E_PASSWORD_TOO_LONG,*'
        $err[0].CategoryInfo.Category | Should -Be 'InvalidArgument'
    }
}

Describe 'ConvertTo-PasswordHashSyncDigest' {
    It 'computes the digest vector from a password and salt' {
        ConvertTo-PasswordHashSyncDigest -Password $Password -Salt $Salt | Should -BeExactly $Vector
        ConvertTo-PasswordHashSyncDigest $Password -Salt $Salt -Iterations 1000 | Should -BeExactly $Vector
    }

    It 'takes the password from the pipeline' {
        $Password | ConvertTo-PasswordHashSyncDigest -Salt $Salt | Should -BeExactly $Vector
    }

    It 'computes it from an NT hash in either case, by name and from the pipeline' {
        ConvertTo-PasswordHashSyncDigest -NTHash $NTHash -Salt $Salt | Should -BeExactly $Vector
        ConvertTo-PasswordHashSyncDigest -NTHash $NTHash.ToLowerInvariant() -Salt $Salt.ToUpperInvariant() | Should -BeExactly $Vector
        $NTHash | ConvertTo-PasswordHashSyncDigest -Salt $Salt | Should -BeExactly $Vector
        [pscustomobject]@{ NTHash = $NTHash } | ConvertTo-PasswordHashSyncDigest -Salt $Salt | Should -BeExactly $Vector
    }

    It 'draws a fresh random salt when none is given' {
        $a = ConvertTo-PasswordHashSyncDigest $Password
        $b = ConvertTo-PasswordHashSyncDigest $Password
        $a | Should -Match '^v1;PPH1_MD4,[0-9a-f]{20},1000,[0-9a-f]{64};$'
        $a | Should -Not -Be $b
        Test-PasswordHashSyncDigest $a $Password | Should -BeTrue
    }

    It 'honours -Iterations' {
        ConvertTo-PasswordHashSyncDigest $Password -Iterations 100 | Should -Match '^v1;PPH1_MD4,[0-9a-f]{20},100,[0-9a-f]{64};$'
    }

    It 'validates salt, NT hash and iterations before calling the library' {
        { ConvertTo-PasswordHashSyncDigest $Password -Salt 'zz' } | Should -Throw -ErrorId 'ParameterArgumentValidationError,*'
        { ConvertTo-PasswordHashSyncDigest -NTHash '1234' } | Should -Throw -ErrorId 'ParameterArgumentValidationError,*'
        { ConvertTo-PasswordHashSyncDigest $Password -Iterations 0 } | Should -Throw -ErrorId 'ParameterArgumentValidationError,*'
        { ConvertTo-PasswordHashSyncDigest $Password -Iterations 1000001 } | Should -Throw -ErrorId 'ParameterArgumentValidationError,*'
    }
}

Describe 'Test-PasswordHashSyncDigest' {
    It 'is true for the right password and false for a wrong one' {
        Test-PasswordHashSyncDigest -Digest $Vector -Password $Password | Should -BeTrue
        Test-PasswordHashSyncDigest -Digest $Vector -Password (ConvertTo-Secure 'Pa$$w0rD') | Should -BeFalse
        Test-PasswordHashSyncDigest -Digest $Vector -Password ([securestring]::new()) | Should -BeFalse
    }

    It 'binds digest and password by position' {
        Test-PasswordHashSyncDigest $Vector $Password | Should -BeTrue
    }

    It 'takes Digest and Password properties from the pipeline' {
        $out = @(
            [pscustomobject]@{ Digest = $Vector; Password = $Password },
            [pscustomobject]@{ Digest = $Vector; Password = $Unicode }
        ) | Test-PasswordHashSyncDigest
        $out | Should -Be @($true, $false)
    }

    It 'checks an NT hash' {
        Test-PasswordHashSyncDigest $Vector -NTHash $NTHash | Should -BeTrue
        Test-PasswordHashSyncDigest $Vector -NTHash '31D6CFE0D16AE931B73C59D7E0C089C0' | Should -BeFalse
    }

    It 'matches a non-ASCII password through the SecureString path, not an ASCII look-alike' {
        $d = ConvertTo-PasswordHashSyncDigest $Unicode -Salt $Salt
        Test-PasswordHashSyncDigest $d -NTHash $UnicodeNTHash | Should -BeTrue
        Test-PasswordHashSyncDigest $d $Unicode | Should -BeTrue
        Test-PasswordHashSyncDigest $d (ConvertTo-Secure 'zlutoucky kun') | Should -BeFalse
    }

    It 'reports a malformed digest as PHS_E_MALFORMED_DIGEST, never $true' {
        foreach ($bad in @('v1;PPH1_MD4,zz', 'not a digest', $Vector.Replace('1000', 'x'))) {
            $out = Test-PasswordHashSyncDigest -Digest $bad -Password $Password -ErrorAction SilentlyContinue -ErrorVariable err
            $out | Should -BeNullOrEmpty -Because "'$bad' is no digest"
            $err.Count | Should -Be 1
            $err[0].FullyQualifiedErrorId | Should -BeLike 'PHS_E_MALFORMED_DIGEST,*'
            $err[0].CategoryInfo.Category | Should -Be 'InvalidData'
        }
        { Test-PasswordHashSyncDigest 'v1;PPH1_MD4,zz' $Password -ErrorAction Stop } | Should -Throw -ErrorId 'PHS_E_MALFORMED_DIGEST,*'
    }

    It 'refuses an empty digest at binding' {
        { Test-PasswordHashSyncDigest -Digest '' -Password $Password } | Should -Throw -ErrorId 'ParameterArgumentValidationError,*'
    }
}
