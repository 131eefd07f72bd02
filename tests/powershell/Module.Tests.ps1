# The module as a whole: a clean import by name in a fresh session, the native library's ABI
# check (and a missing or broken library), the manifest's exports, and the help of every cmdlet.

BeforeDiscovery {
    $CmdletNames = @(
        'ConvertTo-NTHash', 'ConvertTo-PasswordHashSyncDigest', 'Test-PasswordHashSyncDigest',
        'Set-CloudPassword', 'Test-CloudSignIn', 'Get-CloudUser', 'Get-CloudUserRisk', 'Revoke-CloudSession',
        'Invoke-PasswordHashSync', 'Get-PasswordHashSyncStatus', 'Test-PasswordHashSyncConnection',
        'Get-PasswordHashSyncEvent', 'Register-PasswordHashSyncTask', 'Get-PasswordHashSyncTask',
        'Unregister-PasswordHashSyncTask'
    )
}

BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')

    $rid = @(Get-ChildItem -Directory (Join-Path $ModuleDir 'native') | ForEach-Object Name)
    if ($rid.Count -ne 1) { throw "expected one native/<rid>/ folder in $ModuleDir, found: $rid" }
    $rid = $rid[0]
    $libName = @(Get-ChildItem -File (Join-Path $ModuleDir "native/$rid") | ForEach-Object Name)[0]

    # A module copy whose library is replaced; returns the copy's parent (a PSModulePath entry).
    function New-ModuleCopy([string]$Name, [scriptblock]$Change) {
        $parent = Join-Path $TestDrive $Name
        New-Item -ItemType Directory -Path $parent | Out-Null
        Copy-Item -Recurse $ModuleDir (Join-Path $parent 'PasswordHashSync')
        & $Change (Join-Path $parent "PasswordHashSync/native/$rid/$libName")
        $parent
    }

    $importScript = @'
$w = $null; $e = $null
Import-Module PasswordHashSync -WarningVariable w -ErrorVariable e -WarningAction SilentlyContinue -ErrorAction SilentlyContinue
$m = Get-Module PasswordHashSync
[pscustomobject]@{
    Loaded   = [bool]$m
    Path     = if ($m) { $m.ModuleBase } else { $null }
    Warnings = @($w | ForEach-Object { "$_" })
    Errors   = @($e | ForEach-Object { "$_" })
    ErrorIds = @($e | ForEach-Object { $_.FullyQualifiedErrorId })
    Commands = @(Get-Command -Module PasswordHashSync -ErrorAction SilentlyContinue).Count
    NTHash   = if ($m) { ConvertTo-NTHash (ConvertTo-SecureString 'Pa$$w0rd' -AsPlainText -Force) } else { $null }
} | ConvertTo-Json -Compress
'@

    # A library of ABI version 1: only phs_abi_version, compiled here.
    $abiSource = Join-Path $TestDrive 'abi1.c'
    Set-Content -Path $abiSource -Value "#include <stdint.h>`nuint32_t phs_abi_version(void) { return 1; }"
    $abiParent = New-ModuleCopy 'abi1' {
        param($lib)
        & cc -shared -fPIC -o $lib $abiSource
        if ($LASTEXITCODE -ne 0) { throw "cc failed to build the ABI 1 test library" }
    }
    $missingParent = New-ModuleCopy 'missing' { param($lib) Remove-Item $lib }
    $bogusParent = New-ModuleCopy 'bogus' { param($lib) Set-Content -Path $lib -Value 'not a shared object' }

    # Four fresh sessions at once (each takes a few seconds to start).
    $only = { param($p) @{ PSModulePath = $p } }
    $children = @{
        Clean   = Start-ChildPwsh -Script $importScript
        Abi     = Start-ChildPwsh -Script $importScript -Environment (& $only $abiParent)
        Missing = Start-ChildPwsh -Script $importScript -Environment (& $only $missingParent)
        Bogus   = Start-ChildPwsh -Script $importScript -Environment (& $only $bogusParent)
    }
    $results = @{}
    foreach ($k in @($children.Keys)) { $results[$k] = Wait-ChildPwsh $children[$k] }
}

Describe 'Import-Module PasswordHashSync' {
    It 'imports by name in a fresh pwsh -NoProfile session with no warning and no error' {
        $r = $results.Clean
        $r.ExitCode | Should -Be 0
        $r.Stderr | Should -BeNullOrEmpty
        $o = ConvertFrom-ChildJson $r
        $o.Loaded | Should -BeTrue
        $o.Path | Should -Be $ModuleDir
        $o.Warnings | Should -BeNullOrEmpty
        $o.Errors | Should -BeNullOrEmpty
        $o.Commands | Should -Be 17
        $o.NTHash | Should -Be '92937945B518814341DE3F726500D4FF'
    }

    It 'refuses a native library of another ABI version, naming both versions' {
        $o = ConvertFrom-ChildJson $results.Abi
        $o.Loaded | Should -BeFalse
        $o.Errors.Count | Should -BeGreaterThan 0
        $message = $o.Errors -join "`n"
        $message | Should -Match 'version 1\b'
        $message | Should -Match 'version 2\b'
        $message | Should -Match ([regex]::Escape((Join-Path $abiParent "PasswordHashSync/native/$rid/$libName")))
    }

    It 'refuses a module without its native library, naming the expected path and platform' {
        $o = ConvertFrom-ChildJson $results.Missing
        $o.Loaded | Should -BeFalse
        $message = $o.Errors -join "`n"
        $message | Should -Match ([regex]::Escape((Join-Path $missingParent "PasswordHashSync/native/$rid/$libName")))
        $message | Should -Match ([regex]::Escape($rid))
    }

    It 'refuses a file that is not a library, naming it' {
        $o = ConvertFrom-ChildJson $results.Bogus
        $o.Loaded | Should -BeFalse
        ($o.Errors -join "`n") | Should -Match ([regex]::Escape((Join-Path $bogusParent "PasswordHashSync/native/$rid/$libName")))
    }
}

Describe 'Module manifest' {
    BeforeAll {
        $manifest = Import-PowerShellDataFile (Join-Path $ModuleDir 'PasswordHashSync.psd1')
        $module = Get-Module PasswordHashSync
    }

    It 'CmdletsToExport is exactly what the module exports' {
        $exported = @(Get-Command -Module PasswordHashSync).Name | Sort-Object
        @($manifest.CmdletsToExport | Sort-Object) | Should -Be $exported
    }

    It 'exports every cmdlet the DLL defines, and the 17 documented ones' {
        $defined = [PasswordHashSync.PhsyncModule].Assembly.GetTypes() |
            ForEach-Object { $_.GetCustomAttributes([System.Management.Automation.CmdletAttribute], $false) } |
            ForEach-Object { "$($_.VerbName)-$($_.NounName)" } | Sort-Object
        @($manifest.CmdletsToExport | Sort-Object) | Should -Be $defined
        $defined | Should -Be ($Cmdlets | Sort-Object)
    }

    It 'exports no functions, aliases or variables' {
        @($manifest.FunctionsToExport).Count | Should -Be 0
        @($manifest.AliasesToExport).Count | Should -Be 0
        @($manifest.VariablesToExport).Count | Should -Be 0
        @(Get-Command -Module PasswordHashSync -CommandType Function, Alias).Count | Should -Be 0
        $module.ExportedCommands.Values.CommandType | Sort-Object -Unique | Should -Be 'Cmdlet'
    }

    It 'FileList names files that are in the package' {
        foreach ($f in $manifest.FileList) {
            Join-Path $ModuleDir $f | Should -Exist
        }
        $module.Version | Should -Be ([version]$manifest.ModuleVersion)
    }

    It 'passes Test-ModuleManifest' {
        { Test-ModuleManifest (Join-Path $ModuleDir 'PasswordHashSync.psd1') -ErrorAction Stop } | Should -Not -Throw
    }
}

Describe 'A binary module' {
    It 'is loaded as compiled cmdlets: no script module, no Add-Type, no C# source in the package' {
        # Before: the .psm1 compiled PhsyncNative.cs with Add-Type at every import.
        (Get-Module PasswordHashSync).ModuleType | Should -Be 'Binary'
        @(Get-ChildItem -Recurse -File $ModuleDir -Include *.psm1, *.ps1, *.cs).Count | Should -Be 0
    }

    It 'reads a native result over 2 MB (ConvertFrom-Json on Windows PowerShell refused those)' {
        $users = foreach ($i in 1..12000) {
            '{"object_guid":"6f9619ff-8b86-d011-b42d-00c04fc964ff","sam_account_name":"user' + $i + '","user_principal_name":"user' + $i + '@example.com","status":"Success","reason":"synced","last_attempt_at":"2026-11-30T10:00:00Z","retry":{"state":"none"}}'
        }
        $json = '{"mode":"full","ok":true,"started_at":"2026-11-30T10:00:00Z","finished_at":"2026-11-30T10:00:05.5Z","users":[' + ($users -join ',') + ']}'
        $json.Length | Should -BeGreaterThan 2MB
        $o = [PasswordHashSync.Native.Json]::ParseObject($json)
        $o.Arr('users').Count | Should -Be 12000
        $o.Date('finished_at') | Should -Be ([DateTimeOffset]::Parse('2026-11-30T10:00:05.5Z'))
    }
}

Describe 'The committed help' {
    It 'is what scripts/gen-powershell-help.ps1 makes from powershell/help and the cmdlets' {
        $generated = Join-Path $TestDrive 'PasswordHashSync.dll-Help.xml'
        $gen = Join-Path $PSScriptRoot '../../scripts/gen-powershell-help.ps1'
        $run = Invoke-ChildPwsh -Arguments '-File', $gen, '-ModulePath', $ModuleDir, '-OutFile', $generated
        $run.ExitCode | Should -Be 0 -Because "$($run.Stdout) $($run.Stderr)"
        $committed = Join-Path $PSScriptRoot '../../powershell/PasswordHashSync/en-US/PasswordHashSync.dll-Help.xml'
        (Get-Content -Raw $generated) | Should -BeExactly (Get-Content -Raw $committed) -Because 'regenerate it: pwsh -File scripts/gen-powershell-help.ps1 -ModulePath <packaged module>'
    }
}

Describe 'Get-Help <_> -Full' -ForEach $CmdletNames {
    BeforeAll {
        $name = $_
        $help = Get-Help $name -Full
        $command = Get-Command $name
        $common = [System.Management.Automation.PSCmdlet]::CommonParameters +
            [System.Management.Automation.PSCmdlet]::OptionalCommonParameters
    }

    It 'has a synopsis that is not just the syntax' {
        $synopsis = "$($help.Synopsis)".Trim()
        $synopsis | Should -Not -BeNullOrEmpty
        $synopsis | Should -Not -Match "^$([regex]::Escape($name))(\s|$)"
        $synopsis | Should -Not -Match '<CommonParameters>'
    }

    It 'has a description' {
        ($help.description | ForEach-Object { $_.Text }) -join '' | Should -Not -BeNullOrEmpty
    }

    It 'has at least one example with code' {
        # Without help, $help.examples is $null and @($null.example) would count one.
        $examples = @($help.examples.example | Where-Object { $_ })
        $examples.Count | Should -BeGreaterOrEqual 1
        foreach ($e in $examples) {
            "$($e.code)".Trim() | Should -Not -BeNullOrEmpty
        }
    }

    It 'describes every parameter' {
        $documented = @{}
        foreach ($p in @($help.parameters.parameter)) {
            if ($p) { $documented[$p.name] = (@($p.description) | ForEach-Object { $_.Text }) -join '' }
        }
        foreach ($p in $command.Parameters.Keys | Where-Object { $_ -notin $common }) {
            $documented.ContainsKey($p) | Should -BeTrue -Because "-$p of $name needs an entry in the help"
            $documented[$p].Trim() | Should -Not -BeNullOrEmpty -Because "-$p of $name needs a description"
        }
    }
}
