# Module manifest of PasswordHashSync (phsync). Literal values only, explicit exports:
# tests/powershell/parse_check.py checks both.
@{
    RootModule           = 'PasswordHashSync.psm1'
    ModuleVersion        = '0.1.0'
    GUID                 = '0baa24fd-12d0-4172-9240-2d1f750a41bd'
    Author               = 'phsync contributors'
    CompanyName          = 'phsync'
    Copyright            = '(c) phsync contributors'
    Description          = 'Password Hash Synchronization (phsync): sync AD password hashes to a cloud tenant, manage cloud passwords and compute PHS digests, over the phsync native library.'
    PowerShellVersion    = '5.1'
    CompatiblePSEditions = @('Core', 'Desktop')
    FunctionsToExport    = @(
        'ConvertTo-NTHash',
        'ConvertTo-PasswordHashSyncDigest',
        'Get-PasswordHashSyncStatus',
        'Invoke-PasswordHashSync',
        'Register-PasswordHashSyncTask',
        'Set-CloudPassword',
        'Test-CloudSignIn'
    )
    CmdletsToExport      = @()
    VariablesToExport    = @()
    AliasesToExport      = @()
    FileList             = @('PasswordHashSync.psd1', 'PasswordHashSync.psm1', 'PhsyncNative.cs')
    PrivateData          = @{
        PSData = @{
            Tags = @('PasswordHashSync', 'PHS', 'ActiveDirectory', 'EntraID', 'Linux', 'Windows', 'MacOS')
        }
    }
}
