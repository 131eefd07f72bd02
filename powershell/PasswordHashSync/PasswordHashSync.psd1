# Module manifest of PasswordHashSync (phsync): a binary module. Literal values only and
# explicit exports; the Pester suite checks that CmdletsToExport is exactly what the DLL exports.
@{
    RootModule           = 'PasswordHashSync.dll'
    ModuleVersion        = '0.2.0'
    GUID                 = '0baa24fd-12d0-4172-9240-2d1f750a41bd'
    Author               = 'phsync contributors'
    CompanyName          = 'phsync'
    Copyright            = '(c) phsync contributors'
    Description          = 'Password Hash Synchronization (phsync): sync AD password hashes to a cloud tenant, manage cloud passwords and compute PHS digests, over the phsync native library.'
    PowerShellVersion    = '5.1'
    CompatiblePSEditions = @('Core', 'Desktop')
    DotNetFrameworkVersion = '4.7.2'
    FormatsToProcess     = @('PasswordHashSync.Format.ps1xml')
    CmdletsToExport      = @(
        'ConvertTo-NTHash',
        'ConvertTo-PasswordHashSyncDigest',
        'Get-CloudUser',
        'Get-CloudUserRisk',
        'Get-PasswordHashSyncEvent',
        'Get-PasswordHashSyncStatus',
        'Get-PasswordHashSyncTask',
        'Invoke-PasswordHashSync',
        'Register-PasswordHashSyncTask',
        'Revoke-CloudSession',
        'Set-CloudPassword',
        'Start-PasswordHashSync',
        'Test-CloudSignIn',
        'Test-PasswordHashSyncConnection',
        'Test-PasswordHashSyncDigest',
        'Test-PasswordHashSyncQuality',
        'Unregister-PasswordHashSyncTask'
    )
    FunctionsToExport    = @()
    VariablesToExport    = @()
    AliasesToExport      = @()
    FileList             = @('PasswordHashSync.psd1', 'PasswordHashSync.dll', 'PasswordHashSync.Format.ps1xml', 'en-US/PasswordHashSync.dll-Help.xml')
    PrivateData          = @{
        PSData = @{
            Tags = @('PasswordHashSync', 'PHS', 'ActiveDirectory', 'EntraID', 'Linux', 'Windows', 'MacOS')
        }
    }
}
