# Register-, Get- and Unregister-PasswordHashSyncTask under a temporary root folder (-Root: no
# systemctl), for systemd and cron; the unit files through systemd-analyze where it works; and
# the scheduled job's command run as the scheduler would, against the lab.

BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    $Config = Get-FixtureValue PHSYNC_PS_ENGINE_CONFIG
    $Scratch = New-ScratchDirectory tasks
    $Root = Join-Path $Scratch 'root'
    $SystemdDir = Join-Path $Root 'etc/systemd/system'
    $CronDir = Join-Path $Root 'etc/cron.d'
    New-Item -ItemType Directory -Force -Path $SystemdDir, $CronDir | Out-Null
    $LdapsUrl = Get-FixtureValue PHSYNC_LAB_LDAPS_URL
    $Unreachable = Copy-EngineConfig $Config (Join-Path $Scratch 'unreachable') -Replace @{ "`"$LdapsUrl`"" = '"ldaps://127.0.0.1:1"' }

    function Get-EncodedCommand([string]$Text) {
        if ($Text -notmatch '-EncodedCommand ([A-Za-z0-9+/=]+)') { throw "no -EncodedCommand in: $Text" }
        $Matches[1]
    }
    function ConvertFrom-EncodedCommand([string]$Base64) {
        [Text.Encoding]::Unicode.GetString([Convert]::FromBase64String($Base64))
    }
    # The executable of a unit's ExecStart= (a plain word, or one in double quotes).
    function Get-ExecStartExecutable([string]$Unit) {
        $line = ($Unit -split "`n" | Where-Object { $_ -like 'ExecStart=*' }).Substring('ExecStart='.Length)
        if ($line -match '^"((?:[^"\\]|\\.)*)"') { return ($Matches[1] -replace '\\(.)', '$1').Replace('$$', '$').Replace('%%', '%') }
        $line.Split(' ')[0].Replace('$$', '$').Replace('%%', '%')
    }
    function Get-CronLine([string]$Path) {
        , @(Get-Content $Path | Where-Object { $_ -and -not $_.StartsWith('#') })
    }
    $Marker = '# Written by Register-PasswordHashSyncTask (PasswordHashSync module); Unregister-PasswordHashSyncTask removes it.'
    $QuotedConfig = "'" + $Config.Replace("'", "''") + "'"

    # Files the module did not write: never listed, never removed.
    $ForeignCron = Join-Path $CronDir 'passwordhashsync-foreign'
    Set-Content -Path $ForeignCron -Value '*/5 * * * * root /usr/bin/true'
    $ForeignService = Join-Path $SystemdDir 'passwordhashsync-foreign.service'
    Set-Content -Path $ForeignService -Value "[Service]`nType=oneshot`nExecStart=/usr/bin/true"
}

Describe 'Register-PasswordHashSyncTask -Scheduler Systemd' {
    BeforeAll {
        $Task = Register-PasswordHashSyncTask -ConfigPath $Config -Scheduler Systemd -Root $Root -WarningVariable registerWarnings
        $ServicePath = Join-Path $SystemdDir 'passwordhashsync.service'
        $TimerPath = Join-Path $SystemdDir 'passwordhashsync.timer'
        $Service = Get-Content -Raw $ServicePath
        $Timer = Get-Content -Raw $TimerPath
    }

    It 'returns the ScheduledSync it wrote, with no warning' {
        $registerWarnings | Should -BeNullOrEmpty
        $Task | Should -BeOfType ([PasswordHashSync.ScheduledSync])
        $Task.Kind | Should -Be 'SystemdTimer'
        $Task.Name | Should -Be 'passwordhashsync.timer'
        $Task.Interval | Should -Be ([TimeSpan]::FromMinutes(2))
        $Task.ConfigPath | Should -Be $Config
        $Task.RunAs | Should -Be 'root'
        $Task.Root | Should -Be $Root
        $Task.Files | Should -Be @($ServicePath, $TimerPath)
        $Task.Files | ForEach-Object { $_ | Should -Exist }
    }

    It 'writes a oneshot service with no start timeout that runs the job' {
        ($Service -split "`n")[0] | Should -Be $Marker
        $Service | Should -Match '(?m)^\[Service\]$'
        $Service | Should -Match '(?m)^Type=oneshot$'
        $Service | Should -Match '(?m)^TimeoutStartSec=infinity$'
        $Service | Should -Match '(?m)^ExecStart=\S+ -NoProfile -NonInteractive -EncodedCommand [A-Za-z0-9+/=]+$'
        $Service | Should -Not -Match '(?m)^User='
    }

    It 'writes a timer that starts it 120 s after the last run ended' {
        $Timer | Should -Match '(?m)^\[Timer\]$'
        $Timer | Should -Match '(?m)^OnUnitInactiveSec=120s$'
        $Timer | Should -Match '(?m)^Unit=passwordhashsync\.service$'
        $Timer | Should -Match '(?m)^WantedBy=timers\.target$'
    }

    It 'encodes a command that imports the module by name and exits 1 unless the cycle succeeded' {
        $script = ConvertFrom-EncodedCommand (Get-EncodedCommand $Service)
        $script | Should -Match 'Import-Module PasswordHashSync\b'
        $script | Should -Not -Match 'Import-Module\s+[''"]?/'
        $script | Should -Match '\bexit 1\b'
        $script | Should -BeLike "*Invoke-PasswordHashSync -ConfigPath $QuotedConfig*"
    }

    It 'starts a PowerShell executable' {
        $exe = Get-ExecStartExecutable $Service
        $exe | Should -Exist
        Split-Path -Leaf $exe | Should -Match '^(pwsh|powershell)(\.exe)?$' -Because 'the job runs "<exe> -NoProfile -NonInteractive -EncodedCommand ..."'
    }

    It 'passes systemd-analyze verify' {
        $analyze = Get-Command systemd-analyze -CommandType Application -ErrorAction SilentlyContinue | Select-Object -First 1
        if (-not $analyze) {
            Set-ItResult -Skipped -Because 'systemd-analyze is not installed'
            return
        }
        # Does verify work in this container at all? A unit that is certainly valid.
        $probe = Join-Path $TestDrive 'probe'
        New-Item -ItemType Directory -Force $probe | Out-Null
        Set-Content (Join-Path $probe 'phsync-probe.service') "[Unit]`nDescription=probe`n[Service]`nType=oneshot`nExecStart=/bin/sh -c true"
        $probeOut = & $analyze.Source verify (Join-Path $probe 'phsync-probe.service') 2>&1
        if ($LASTEXITCODE -ne 0) {
            Set-ItResult -Skipped -Because "systemd-analyze verify does not work here (a valid unit fails: $probeOut)"
            return
        }
        $out = & $analyze.Source verify $ServicePath $TimerPath 2>&1 | ForEach-Object { "$_" }
        $LASTEXITCODE | Should -Be 0 -Because ($out -join "`n")
        $out | Where-Object { $_ -match 'passwordhashsync' } | Should -BeNullOrEmpty -Because 'systemd-analyze found nothing to say about the units'
    }
}

Describe 'Register-PasswordHashSyncTask -Scheduler Cron' {
    BeforeAll {
        $Task = Register-PasswordHashSyncTask -ConfigPath $Config -Scheduler Cron -Root $Root
        $CronPath = Join-Path $CronDir 'passwordhashsync'
    }

    It 'returns the ScheduledSync it wrote' {
        $Task.Kind | Should -Be 'Cron'
        $Task.Name | Should -Be $CronPath
        $Task.Interval | Should -Be ([TimeSpan]::FromMinutes(2))
        $Task.ConfigPath | Should -Be $Config
        $Task.Files | Should -Be @($CronPath)
        $CronPath | Should -Exist
        (Get-Content $CronPath -TotalCount 1) | Should -Be $Marker
    }

    It 'writes one line: every 2 minutes, as root, never overlapping (flock -n -E 0)' {
        $lines = Get-CronLine $CronPath
        $lines.Count | Should -Be 1
        $lines[0] | Should -Match '^\*/2 \* \* \* \* root flock -n -E 0 /run/lock/phsync-passwordhashsync\.lock \S+ -NoProfile -NonInteractive -EncodedCommand [A-Za-z0-9+/=]+$'
        $script = ConvertFrom-EncodedCommand (Get-EncodedCommand $lines[0])
        $script | Should -Match 'Import-Module PasswordHashSync\b'
        $script | Should -Match '\bexit 1\b'
    }

    It 'runs whole hours as hours' {
        $t = Register-PasswordHashSyncTask $Config -Scheduler Cron -Root $Root -Name hourly -Interval (New-TimeSpan -Hours 2)
        (Get-CronLine $t.Files[0])[0] | Should -Match '^0 \*/2 \* \* \* root '
        Unregister-PasswordHashSyncTask hourly -Root $Root
        $t.Files[0] | Should -Not -Exist
    }

    It 'refuses an interval cron cannot express (7 minutes) and writes nothing' {
        $e = Get-TerminatingError { Register-PasswordHashSyncTask $Config -Scheduler Cron -Root $Root -Name seven -Interval (New-TimeSpan -Minutes 7) }
        $e | Should -Not -BeNullOrEmpty
        $e.FullyQualifiedErrorId | Should -BeLike 'PhsyncTaskRegistrationFailed,*'
        $e.CategoryInfo.Category | Should -Be 'InvalidArgument'
        Join-Path $CronDir 'seven' | Should -Not -Exist
    }
}

Describe 'Register-PasswordHashSyncTask options' {
    It '-RunAsAccount sets User= in the service and the user field in cron' {
        $s = Register-PasswordHashSyncTask $Config -Scheduler Systemd -Root $Root -Name runas -RunAsAccount phsync
        $c = Register-PasswordHashSyncTask $Config -Scheduler Cron -Root $Root -Name runas -RunAsAccount phsync
        $s.RunAs | Should -Be 'phsync'
        $c.RunAs | Should -Be 'phsync'
        Get-Content -Raw (Join-Path $SystemdDir 'runas.service') | Should -Match '(?m)^User=phsync$'
        (Get-CronLine (Join-Path $CronDir 'runas'))[0] | Should -Match '^\*/2 \* \* \* \* phsync flock -n -E 0 '
        (Get-PasswordHashSyncTask 'runas*' -Root $Root).RunAs | Should -Be @('phsync', 'phsync')
        Unregister-PasswordHashSyncTask 'runas*' -Root $Root
        Get-PasswordHashSyncTask 'runas*' -Root $Root | Should -BeNullOrEmpty
    }

    It '-Interval sets the timer, and registering again replaces the files' {
        Register-PasswordHashSyncTask $Config -Scheduler Systemd -Root $Root -Name every5 -Interval (New-TimeSpan -Minutes 5) | Out-Null
        Get-Content -Raw (Join-Path $SystemdDir 'every5.timer') | Should -Match '(?m)^OnUnitInactiveSec=300s$'
        Register-PasswordHashSyncTask $Config -Scheduler Systemd -Root $Root -Name every5 -Interval (New-TimeSpan -Minutes 10) | Out-Null
        $t = @(Get-PasswordHashSyncTask every5* -Root $Root)
        $t.Count | Should -Be 1
        $t[0].Interval | Should -Be ([TimeSpan]::FromMinutes(10))
        @(Get-ChildItem $SystemdDir -Filter 'every5*').Count | Should -Be 2 -Because 'no temporary file is left behind'
        Unregister-PasswordHashSyncTask every5 -Root $Root
    }

    It 'refuses intervals under a minute or with fractions of a second' {
        foreach ($i in (New-TimeSpan -Seconds 30), [TimeSpan]::FromSeconds(90.5)) {
            $e = Get-TerminatingError { Register-PasswordHashSyncTask $Config -Scheduler Systemd -Root $Root -Name bad -Interval $i }
            $e.FullyQualifiedErrorId | Should -BeLike 'PhsyncInvalidInterval,*'
        }
        Join-Path $SystemdDir 'bad.service' | Should -Not -Exist
    }

    It '-WhatIf writes no file' {
        Register-PasswordHashSyncTask $Config -Scheduler Systemd -Root $Root -Name whatif -WhatIf | Should -BeNullOrEmpty
        Register-PasswordHashSyncTask $Config -Scheduler Cron -Root $Root -Name whatif -WhatIf | Should -BeNullOrEmpty
        Get-ChildItem $SystemdDir, $CronDir -Filter 'whatif*' | Should -BeNullOrEmpty
    }

    It 'keeps a config path with blanks and a quote intact' {
        $odd = Copy-EngineConfig $Config (Join-Path $Scratch "it's a dir")
        $t = Register-PasswordHashSyncTask $odd -Scheduler Systemd -Root $Root -Name odd
        $t.ConfigPath | Should -Be $odd
        (Get-PasswordHashSyncTask odd* -Root $Root).ConfigPath | Should -Be $odd
        $script = ConvertFrom-EncodedCommand (Get-EncodedCommand (Get-Content -Raw $t.Files[0]))
        $script | Should -BeLike ("*-ConfigPath '" + $odd.Replace("'", "''") + "'*")
        Unregister-PasswordHashSyncTask odd -Root $Root
    }

    It 'stops when the config or the root is missing' {
        (Get-TerminatingError { Register-PasswordHashSyncTask (Join-Path $TestDrive 'none.toml') -Scheduler Systemd -Root $Root }).FullyQualifiedErrorId |
            Should -BeLike 'PhsyncConfigNotFound,*'
        (Get-TerminatingError { Register-PasswordHashSyncTask $Config -Scheduler Systemd -Root (Join-Path $TestDrive 'no-root') }).FullyQualifiedErrorId |
            Should -BeLike 'PhsyncRootNotFound,*'
    }
}

Describe 'Get-PasswordHashSyncTask' {
    It 'returns the registered jobs with ConfigPath and Interval, and nothing it did not write' {
        $tasks = @(Get-PasswordHashSyncTask -Root $Root)
        $tasks.Kind | Sort-Object | Should -Be @('Cron', 'SystemdTimer')
        foreach ($t in $tasks) {
            $t | Should -BeOfType ([PasswordHashSync.ScheduledSync])
            $t.ConfigPath | Should -Be $Config
            $t.Interval | Should -Be ([TimeSpan]::FromMinutes(2))
            $t.RunAs | Should -Be 'root'
            $t.Command | Should -Match '-EncodedCommand [A-Za-z0-9+/=]+$'
            $t.Files | ForEach-Object { $_ | Should -Exist }
        }
        $tasks.Files | Should -Not -Contain $ForeignCron
        $tasks.Files | Should -Not -Contain $ForeignService
    }

    It '-Name filters with wildcards' {
        @(Get-PasswordHashSyncTask 'passwordhash*' -Root $Root).Count | Should -Be 2
        @(Get-PasswordHashSyncTask -Name 'PasswordHashSync' -Root $Root).Count | Should -Be 2
        Get-PasswordHashSyncTask 'nothing-like-it*' -Root $Root | Should -BeNullOrEmpty
    }
}

Describe 'The scheduled job command' {
    BeforeAll {
        # What systemd runs: the ExecStart executable with -NoProfile -NonInteractive
        # -EncodedCommand <the unit's>, in a fresh process that finds the module by name.
        $bad = Register-PasswordHashSyncTask $Unreachable -Scheduler Systemd -Root $Root -Name unreachable
        $okCommand = Get-EncodedCommand (Get-Content -Raw (Join-Path $SystemdDir 'passwordhashsync.service'))
        $badCommand = Get-EncodedCommand (Get-Content -Raw $bad.Files[0])
        $exe = Get-ExecStartExecutable (Get-Content -Raw (Join-Path $SystemdDir 'passwordhashsync.service'))
        $okChild = Start-ChildPwsh -Executable $exe -Arguments '-EncodedCommand', $okCommand
        $badChild = Start-ChildPwsh -Executable $exe -Arguments '-EncodedCommand', $badCommand
        $OkRun = Wait-ChildPwsh $okChild -TimeoutSeconds 120
        $BadRun = Wait-ChildPwsh $badChild -TimeoutSeconds 120
        Unregister-PasswordHashSyncTask unreachable -Root $Root
    }

    It 'exits 0 against the lab config and reports the cycle' {
        $OkRun.ExitCode | Should -Be 0 -Because "stdout: $($OkRun.Stdout) stderr: $($OkRun.Stderr)"
        $OkRun.Stdout | Should -Match 'phsync (full|incremental) cycle: ok=True in_scope=2 '
    }

    It 'exits 1 when the DC is unreachable' {
        $BadRun.ExitCode | Should -Be 1 -Because "stdout: $($BadRun.Stdout) stderr: $($BadRun.Stderr)"
        "$($BadRun.Stdout)$($BadRun.Stderr)" | Should -Match 'PHS_E_(DIRECTORY|REPLICATION)|127\.0\.0\.1:1'
    }
}

Describe 'Get-PasswordHashSyncStatus -Root' {
    It 'lists the jobs that run the config and when the next cycle is due' {
        $s = Get-PasswordHashSyncStatus -ConfigPath $Config -Root $Root
        $s.ScheduledTasks.Kind | Sort-Object | Should -Be @('Cron', 'SystemdTimer')
        $s.SchedulerEnabled | Should -BeTrue
        $s.LastCycle | Should -Not -BeNullOrEmpty
        $s.NextCycleDueAt | Should -Be ($s.LastCycle.FinishedAt + [TimeSpan]::FromMinutes(2))
    }

    It 'takes ConfigPath from Get-PasswordHashSyncTask on the pipeline' {
        $saved = $env:PHSYNC_CONFIG
        try {
            $env:PHSYNC_CONFIG = $null
            $s = Get-PasswordHashSyncTask -Root $Root | Select-Object -First 1 | Get-PasswordHashSyncStatus -Root $Root
            $s.ConfigPath | Should -Be $Config
        } finally {
            $env:PHSYNC_CONFIG = $saved
        }
    }
}

Describe 'Unregister-PasswordHashSyncTask' {
    It '-WhatIf removes nothing' {
        $files = (Get-PasswordHashSyncTask -Root $Root).Files
        Get-PasswordHashSyncTask -Root $Root | Unregister-PasswordHashSyncTask -WhatIf
        Unregister-PasswordHashSyncTask PasswordHashSync -Root $Root -WhatIf
        $files | ForEach-Object { $_ | Should -Exist }
        @(Get-PasswordHashSyncTask -Root $Root).Count | Should -Be 2
    }

    It 'reports an unknown name as PhsyncTaskNotFound; a wildcard matching nothing is no error' {
        Unregister-PasswordHashSyncTask no-such-task -Root $Root -ErrorAction SilentlyContinue -ErrorVariable err
        $err.Count | Should -Be 1
        $err[0].FullyQualifiedErrorId | Should -BeLike 'PhsyncTaskNotFound,*'
        $err[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
        Unregister-PasswordHashSyncTask 'no-such-*' -Root $Root -ErrorVariable err2
        $err2 | Should -BeNullOrEmpty
    }

    It 'removes what Get-PasswordHashSyncTask pipes to it, and only that' {
        $files = (Get-PasswordHashSyncTask -Root $Root).Files
        Get-PasswordHashSyncTask -Root $Root | Unregister-PasswordHashSyncTask
        Get-PasswordHashSyncTask -Root $Root | Should -BeNullOrEmpty
        $files | ForEach-Object { $_ | Should -Not -Exist }
        $ForeignCron | Should -Exist
        $ForeignService | Should -Exist
    }
}

Describe 'Scheduled jobs: failures are reported, runs never overlap' {
    It 'a cron file that cannot be written is an error, not a ScheduledSync' {
        # Before the binary module, a failed WriteAllText of the cron file was still reported as written.
        $noCron = Join-Path $Scratch 'root-without-cron'
        New-Item -ItemType Directory -Force -Path $noCron | Out-Null
        $out = $null
        $e = Get-TerminatingError { $script:out = Register-PasswordHashSyncTask $Config -Scheduler Cron -Root $noCron -Name unwritable }
        $e | Should -Not -BeNullOrEmpty
        $e.FullyQualifiedErrorId | Should -BeLike 'PhsyncTaskRegistrationFailed,*'
        $e.CategoryInfo.Category | Should -Be 'WriteError'
        "$e" | Should -Match ([regex]::Escape((Join-Path $noCron 'etc/cron.d')))
        $script:out | Should -BeNullOrEmpty
    }

    It 'a cron run while the previous one still holds the lock does nothing and exits 0' {
        $t = Register-PasswordHashSyncTask $Config -Scheduler Cron -Root $Root -Name overlap -WarningAction SilentlyContinue
        $line = (Get-CronLine $t.Files[0])[0]
        # The command part of the cron line (after the 5 schedule fields and the user), as cron's sh runs it.
        $command = ($line -split ' ', 7)[6]
        $command | Should -Match '^flock -n -E 0 /run/lock/phsync-overlap\.lock '
        $before = (Get-PasswordHashSyncStatus -ConfigPath $Config).LastCycle.FinishedAt
        $holder = Start-Process -FilePath flock -ArgumentList '/run/lock/phsync-overlap.lock', 'sleep', '20' -PassThru
        try {
            Start-Sleep -Milliseconds 300
            $watch = [Diagnostics.Stopwatch]::StartNew()
            $out = & sh -c $command 2>&1
            $watch.Stop()
            $LASTEXITCODE | Should -Be 0 -Because ($out -join "`n")
            $watch.Elapsed.TotalSeconds | Should -BeLessThan 2 -Because 'a locked run must not wait or start PowerShell'
            (Get-PasswordHashSyncStatus -ConfigPath $Config).LastCycle.FinishedAt | Should -Be $before
        }
        finally {
            Stop-Process -Id $holder.Id -Force -ErrorAction SilentlyContinue
            Unregister-PasswordHashSyncTask overlap -Root $Root
        }
    }
}
