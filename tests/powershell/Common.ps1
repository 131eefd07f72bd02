# Shared by the *.Tests.ps1 files (dot-sourced in their BeforeAll): the fixture that
# scripts/test-powershell set up, passed in PHSYNC_PS_* and PHSYNC_LAB_* environment variables,
# and small helpers. A missing variable fails the suite with instructions, never a silent skip.

function Get-FixtureValue([string]$Name) {
    $value = [Environment]::GetEnvironmentVariable($Name)
    if ([string]::IsNullOrEmpty($value)) {
        throw "$Name is not set: run the suite through scripts/test-powershell (it builds the module, starts a tenant service and writes the lab configs)."
    }
    $value
}

$script:ModuleDir = Get-FixtureValue PHSYNC_PS_MODULE          # <target>/powershell/PasswordHashSync
$script:ModuleParent = Split-Path -Parent $ModuleDir
$script:Pwsh = Get-FixtureValue PHSYNC_PS_PWSH                 # the pwsh executable for child sessions
$script:PhsyncCli = Get-FixtureValue PHSYNC_PS_PHSYNC          # the phsync CLI (release build)
$script:Sep = [IO.Path]::PathSeparator

# Import-Module by name, as users and scheduled jobs do: the packaged module's parent folder
# first on PSModulePath (child sessions inherit it).
if (($env:PSModulePath -split [regex]::Escape($Sep)) -notcontains $ModuleParent) {
    $env:PSModulePath = $ModuleParent + $Sep + $env:PSModulePath
}
Import-Module PasswordHashSync -ErrorAction Stop

$script:Cmdlets = @(
    'ConvertTo-NTHash', 'ConvertTo-PasswordHashSyncDigest', 'Test-PasswordHashSyncDigest',
    'Set-CloudPassword', 'Test-CloudSignIn', 'Get-CloudUser', 'Get-CloudUserRisk', 'Revoke-CloudSession',
    'Invoke-PasswordHashSync', 'Start-PasswordHashSync', 'Get-PasswordHashSyncStatus', 'Test-PasswordHashSyncConnection', 'Test-PasswordHashSyncQuality',
    'Get-PasswordHashSyncEvent', 'Register-PasswordHashSyncTask', 'Get-PasswordHashSyncTask',
    'Unregister-PasswordHashSyncTask'
)

function ConvertTo-Secure([string]$Text) {
    $s = [System.Security.SecureString]::new()
    foreach ($c in $Text.ToCharArray()) { $s.AppendChar($c) }
    $s.MakeReadOnly()
    $s
}

# A seeded lab account's password (seed.tsv: sam, password, upn, container, flags).
function Get-LabAccount([string]$Sam) {
    $seed = Get-FixtureValue PHSYNC_LAB_SEED_FILE
    foreach ($line in [IO.File]::ReadAllLines($seed)) {
        if ($line.StartsWith('#') -or -not $line.Trim()) { continue }
        $f = $line.Split("`t")
        if ($f[0] -eq $Sam) {
            return [pscustomobject]@{ Sam = $f[0]; Password = $f[1]; Upn = $f[2]; Container = $f[3]; Flags = @($f[4].Split(',')) }
        }
    }
    throw "no account $Sam in $seed"
}

function Get-LabAccounts {
    $seed = Get-FixtureValue PHSYNC_LAB_SEED_FILE
    foreach ($line in [IO.File]::ReadAllLines($seed)) {
        if ($line.StartsWith('#') -or -not $line.Trim()) { continue }
        $f = $line.Split("`t")
        [pscustomobject]@{ Sam = $f[0]; Password = $f[1]; Upn = $f[2]; Container = $f[3]; Flags = @($f[4].Split(',')) }
    }
}

# Run the phsync CLI; throws with its stderr on a non-zero exit.
function Invoke-PhsyncCli {
    $out = & $PhsyncCli @args 2>&1
    if ($LASTEXITCODE -ne 0) { throw "phsync $($args -join ' ') exited $LASTEXITCODE`: $out" }
    $out
}

# A copy of an engine config folder (phsync.toml, replicator.pw) with text replaced in the
# config, a fresh state and tenant; returns the new config path.
function Copy-EngineConfig {
    param([string]$Config, [string]$Destination, [hashtable]$Replace = @{}, [string]$ReplicatorPassword)
    New-Item -ItemType Directory -Force -Path $Destination | Out-Null
    $text = [IO.File]::ReadAllText($Config)
    foreach ($k in $Replace.Keys) {
        if (-not $text.Contains($k)) { throw "Copy-EngineConfig: '$k' is not in $Config" }
        $text = $text.Replace($k, $Replace[$k])
    }
    $target = Join-Path $Destination 'phsync.toml'
    [IO.File]::WriteAllText($target, $text)
    $pw = Join-Path $Destination 'replicator.pw'
    if ($PSBoundParameters.ContainsKey('ReplicatorPassword')) {
        [IO.File]::WriteAllText($pw, $ReplicatorPassword)
    } else {
        Copy-Item (Join-Path (Split-Path $Config) 'replicator.pw') $pw
    }
    if (-not $IsWindows) { & chmod 600 $pw }
    $target
}

# Run a script in a child `pwsh -NoProfile -NonInteractive` (PSModulePath inherited, plus
# -Environment entries; a $null value removes a variable). Returns exit code, stdout, stderr.
function Start-ChildPwsh {
    param([string]$Script, [hashtable]$Environment = @{}, [string[]]$Arguments, [string]$Executable = $Pwsh)
    $psi = [System.Diagnostics.ProcessStartInfo]::new($Executable)
    foreach ($a in @('-NoProfile', '-NonInteractive')) { $psi.ArgumentList.Add($a) }
    if ($Arguments) {
        foreach ($a in $Arguments) { $psi.ArgumentList.Add($a) }
    } else {
        $psi.ArgumentList.Add('-EncodedCommand')
        $psi.ArgumentList.Add([Convert]::ToBase64String([Text.Encoding]::Unicode.GetBytes($Script)))
    }
    $psi.UseShellExecute = $false
    $psi.RedirectStandardOutput = $true
    $psi.RedirectStandardError = $true
    foreach ($k in $Environment.Keys) {
        if ($null -eq $Environment[$k]) { [void]$psi.Environment.Remove($k) } else { $psi.Environment[$k] = [string]$Environment[$k] }
    }
    $p = [System.Diagnostics.Process]::Start($psi)
    [pscustomobject]@{ Process = $p; Stdout = $p.StandardOutput.ReadToEndAsync(); Stderr = $p.StandardError.ReadToEndAsync() }
}

function Wait-ChildPwsh {
    param([Parameter(Mandatory)]$Child, [int]$TimeoutSeconds = 120)
    if (-not $Child.Process.WaitForExit($TimeoutSeconds * 1000)) {
        $Child.Process.Kill($true)
        throw "child pwsh did not finish within $TimeoutSeconds s"
    }
    $Child.Process.WaitForExit()
    [pscustomobject]@{
        ExitCode = $Child.Process.ExitCode
        Stdout   = $Child.Stdout.GetAwaiter().GetResult()
        Stderr   = $Child.Stderr.GetAwaiter().GetResult()
    }
}

function Invoke-ChildPwsh {
    param([string]$Script, [hashtable]$Environment = @{}, [string[]]$Arguments, [int]$TimeoutSeconds = 120)
    Wait-ChildPwsh -Child (Start-ChildPwsh -Script $Script -Environment $Environment -Arguments $Arguments) -TimeoutSeconds $TimeoutSeconds
}

# The last line of a child's stdout, parsed as JSON (children print one JSON object last).
function ConvertFrom-ChildJson($Result) {
    $lines = @($Result.Stdout -split "`r?`n" | Where-Object { $_.Trim() })
    if ($lines.Count -eq 0) { throw "child pwsh printed nothing (exit $($Result.ExitCode)); stderr: $($Result.Stderr)" }
    try {
        $lines[-1] | ConvertFrom-Json
    } catch {
        throw "child pwsh output is not JSON (exit $($Result.ExitCode)): $($Result.Stdout) / stderr: $($Result.Stderr)"
    }
}

# The ErrorRecord a script block raises with -ErrorAction Stop, or $null.
function Get-TerminatingError([scriptblock]$Body) {
    try {
        & $Body | Out-Null
    } catch {
        return $_
    }
    $null
}

# A fresh folder under the script's work dir for state that lives across Describe blocks
# (Pester removes what a block added to $TestDrive when the block ends: a tenant's -wal file,
# a unit written in one block and read in the next).
function New-ScratchDirectory([string]$Name) {
    $dir = Join-Path (Get-FixtureValue PHSYNC_PS_WORK) "scratch/$Name"
    if (Test-Path $dir) { Remove-Item -Recurse -Force $dir }
    New-Item -ItemType Directory -Force -Path $dir | Out-Null
    (Resolve-Path $dir).ProviderPath
}
