# The sync engine cmdlets against the AD lab DC: Invoke-PasswordHashSync (cycles, users,
# progress, -WhatIf, stopping from another runspace, failures), Start-PasswordHashSync (the
# run loop with change notifications, stopped from another runspace), Get-PasswordHashSyncStatus,
# Test-PasswordHashSyncConnection and Get-PasswordHashSyncEvent.
#
# PHSYNC_PS_ENGINE_CONFIG is scoped to OU=Demo (demo1, demo2); PHSYNC_PS_DOMAIN_CONFIG to the
# whole lab domain (enough users to stop a cycle in the middle).

BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    $Config = Get-FixtureValue PHSYNC_PS_ENGINE_CONFIG
    $EngineTenant = Join-Path (Split-Path $Config) 'tenant.db'
    $Demo = Get-LabAccount (Get-FixtureValue PHSYNC_PS_ENGINE_USER)
    $DemoPassword = ConvertTo-Secure $Demo.Password
    $DomainConfig = Get-FixtureValue PHSYNC_PS_DOMAIN_CONFIG
    $DomainTenant = Join-Path (Split-Path $DomainConfig) 'tenant.db'
    $LdapsUrl = Get-FixtureValue PHSYNC_LAB_LDAPS_URL
    $Scratch = New-ScratchDirectory engine

    # The same lab config with its LDAP URL on a closed port: the DC is unreachable.
    $Unreachable = Copy-EngineConfig $Config (Join-Path $Scratch 'unreachable') -Replace @{ "`"$LdapsUrl`"" = '"ldaps://127.0.0.1:1"' }
    # The same lab config with a wrong replicator password.
    $WrongPassword = Copy-EngineConfig $Config (Join-Path $Scratch 'wrong-password') -ReplicatorPassword 'Wrong-Passw0rd-1'
    $NoConfig = Join-Path $Scratch 'no-such-dir/phsync.toml'

    $CheckNames = 'config', 'fips', 'dc_reachable', 'ldap_bind', 'drsr_bind', 'replication_rights', 'tenant_reachable', 'token_valid', 'ca_trusted'
}

Describe 'Invoke-PasswordHashSync' {
    BeforeAll {
        # A full cycle in another runspace, to read its progress records.
        $ps = [powershell]::Create()
        [void]$ps.AddScript('param($c) Import-Module PasswordHashSync -ErrorAction Stop; Invoke-PasswordHashSync -ConfigPath $c -Full').AddArgument($Config)
        $CycleStart = [DateTimeOffset]::UtcNow.AddSeconds(-1)
        $FullOut = @($ps.Invoke())
        $FullProgress = @($ps.Streams.Progress)
        $FullErrors = @($ps.Streams.Error)
        $ps.Dispose()
        $Full = $FullOut | Select-Object -First 1
    }

    It 'runs a full cycle against the lab and returns one SyncCycleResult with Ok' {
        $FullErrors | Should -BeNullOrEmpty
        $FullOut.Count | Should -Be 1
        $Full | Should -BeOfType ([PasswordHashSync.SyncCycleResult])
        $Full.Mode | Should -Be 'full'
        $Full.Ok | Should -BeTrue
        $Full.InScope | Should -Be 2
        $Full.Failed | Should -Be 0
        ($Full.Applied + $Full.Stale) | Should -Be 2
        $Full.Users.SamAccountName | Sort-Object | Should -Be @('demo1', 'demo2')
        $Full.Users | ForEach-Object { $_.Status | Should -Be 'Success' }
    }

    It 'has PascalCase properties and DateTimeOffset times' {
        foreach ($o in @($Full) + @($Full.Users)) {
            foreach ($p in $o.PSObject.Properties.Name) {
                $p | Should -MatchExactly '^[A-Z][A-Za-z0-9]*$'
            }
        }
        $Full.StartedAt | Should -BeOfType ([DateTimeOffset])
        $Full.FinishedAt | Should -BeOfType ([DateTimeOffset])
        $Full.StartedAt | Should -BeGreaterOrEqual $CycleStart
        $Full.FinishedAt | Should -BeGreaterOrEqual $Full.StartedAt
        $Full.Duration | Should -BeOfType ([TimeSpan])
        $synced = $Full.Users | Where-Object SamAccountName -EQ $Demo.Sam
        $synced.ObjectGuid | Should -BeOfType ([guid])
        $synced.ObjectGuid | Should -Not -Be ([guid]::Empty)
        $synced.UserPrincipalName | Should -Be $Demo.Upn
        $synced.LastAttemptAt | Should -BeOfType ([DateTimeOffset])
    }

    It 'writes progress records during the cycle (scope, replicate, credentials) and completes them' {
        $FullProgress.Count | Should -BeGreaterThan 0
        $stages = $FullProgress | ForEach-Object { ($_.StatusDescription -split ':')[0] } | Select-Object -Unique
        $stages | Should -Contain 'scope'
        $stages | Should -Contain 'replicate'
        $stages | Should -Contain 'credentials'
        $FullProgress[0].Activity | Should -Match 'Password hash sync'
        $FullProgress[-1].RecordType | Should -Be 'Completed'
        $FullProgress | Where-Object StatusDescription -Like 'credentials*' |
            ForEach-Object { $_.PercentComplete | Should -BeIn (0..100) }
    }

    It 'lets the synced user sign in to the tenant with the on-premises password' {
        $r = Test-CloudSignIn $Demo.Upn $DemoPassword -Tenant $EngineTenant
        $r.Result | Should -Be 'success'
        (Test-CloudSignIn $Demo.Upn (ConvertTo-Secure 'Not-The-Passw0rd') -Tenant $EngineTenant).Succeeded | Should -BeFalse
    }

    It 'shows the synced user with Get-CloudUser as synced, never with a digest' {
        $u = Get-CloudUser $Demo.Upn -Tenant $EngineTenant
        $u.Origin | Should -Be 'synced'
        $u.PasswordSource | Should -Be 'synced'
        $u.SourceAnchor | Should -Not -BeNullOrEmpty
        $u.PasswordAppliedAt | Should -BeOfType ([DateTimeOffset])
        $json = $u | ConvertTo-Json -Depth 5
        $json | Should -Not -Match 'PPH1'
        $json | Should -Not -Match '[0-9a-fA-F]{64}'
    }

    It 'runs an incremental cycle next, ConfigPath by position' {
        $r = Invoke-PasswordHashSync $Config -ErrorVariable err
        $err | Should -BeNullOrEmpty
        $r.Mode | Should -Be 'incremental'
        $r.Ok | Should -BeTrue
        $r.Failed | Should -Be 0
    }

    It 'syncs the users named on the pipeline now' {
        $r = $Demo.Sam | Invoke-PasswordHashSync -ConfigPath $Config
        $r | Should -BeOfType ([PasswordHashSync.UserSyncResult])
        $r.SamAccountName | Should -Be $Demo.Sam
        $r.Status | Should -Be 'Success'
        $r.IsFailure | Should -BeFalse
        (@('demo1', 'demo2') | Invoke-PasswordHashSync -ConfigPath $Config).SamAccountName | Should -Be @('demo1', 'demo2')
        ([pscustomobject]@{ SamAccountName = 'demo2' } | Invoke-PasswordHashSync -ConfigPath $Config).SamAccountName | Should -Be 'demo2'
        (Invoke-PasswordHashSync -ConfigPath $Config -UserName demo1).SamAccountName | Should -Be 'demo1'
    }

    It 'reports an unknown user as PHS_E_NOT_FOUND and goes on with the others' {
        $r = @('no-such-user', $Demo.Sam) | Invoke-PasswordHashSync -ConfigPath $Config -ErrorAction SilentlyContinue -ErrorVariable err
        @($r).Count | Should -Be 1
        $r.SamAccountName | Should -Be $Demo.Sam
        $err.Count | Should -Be 1
        $err[0].FullyQualifiedErrorId | Should -BeLike 'PHS_E_NOT_FOUND,*'
        $err[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
        $err[0].TargetObject | Should -Be 'no-such-user'
    }

    It '-WhatIf runs no cycle and syncs no user' {
        $before = (Get-PasswordHashSyncStatus -ConfigPath $Config).LastCycle
        $events = @(Get-PasswordHashSyncEvent -ConfigPath $Config).Count
        Invoke-PasswordHashSync -ConfigPath $Config -Full -WhatIf | Should -BeNullOrEmpty
        Invoke-PasswordHashSync -ConfigPath $Config -WhatIf | Should -BeNullOrEmpty
        $Demo.Sam | Invoke-PasswordHashSync -ConfigPath $Config -WhatIf | Should -BeNullOrEmpty
        $after = (Get-PasswordHashSyncStatus -ConfigPath $Config).LastCycle
        $after.StartedAt | Should -Be $before.StartedAt
        $after.FinishedAt | Should -Be $before.FinishedAt
        $after.Mode | Should -Be $before.Mode
        @(Get-PasswordHashSyncEvent -ConfigPath $Config).Count | Should -Be $events
    }

    It 'stops with PhsyncConfigNotFound when the config is missing' {
        $e = Get-TerminatingError { Invoke-PasswordHashSync -ConfigPath $NoConfig }
        $e | Should -Not -BeNullOrEmpty
        $e.FullyQualifiedErrorId | Should -BeLike 'PhsyncConfigNotFound,*'
        $e.CategoryInfo.Category | Should -Be 'ObjectNotFound'
        $e.TargetObject | Should -Be $NoConfig
    }

    It 'stops with PhsyncNoConfig without -ConfigPath or $env:PHSYNC_CONFIG' {
        $saved = $env:PHSYNC_CONFIG
        try {
            $env:PHSYNC_CONFIG = $null
            (Get-TerminatingError { Invoke-PasswordHashSync }).FullyQualifiedErrorId | Should -BeLike 'PhsyncNoConfig,*'
        } finally {
            $env:PHSYNC_CONFIG = $saved
        }
    }

    It 'stops with PHS_E_CONFIG / InvalidData for a config that does not parse' {
        $bad = Join-Path $TestDrive 'bad.toml'
        Set-Content -Path $bad -Value "[source`nthis is not TOML"
        $e = Get-TerminatingError { Invoke-PasswordHashSync -ConfigPath $bad }
        $e.FullyQualifiedErrorId | Should -BeLike 'PHS_E_CONFIG,*'
        $e.CategoryInfo.Category | Should -Be 'InvalidData'
    }

    It 'stops with PHS_E_DIRECTORY or PHS_E_REPLICATION when the DC is unreachable, and logs 611' {
        $e = Get-TerminatingError { Invoke-PasswordHashSync -ConfigPath $Unreachable }
        $e | Should -Not -BeNullOrEmpty
        $e.FullyQualifiedErrorId | Should -Match '^PHS_E_(DIRECTORY|REPLICATION),'
        $e.CategoryInfo.Category | Should -BeIn @('ConnectionError', 'ProtocolError')
        "$e" | Should -Match '127\.0\.0\.1'
        $last = (Get-PasswordHashSyncStatus -ConfigPath $Unreachable).LastCycle
        $last.Ok | Should -BeFalse
        $last.Error | Should -Not -BeNullOrEmpty
        @(Get-PasswordHashSyncEvent -ConfigPath $Unreachable -Id 611).Count | Should -BeGreaterThan 0
    }
}

Describe 'Stopping a cycle from another runspace' {
    BeforeAll {
        # Ten objects per GetNCChanges batch (sync.batch_size = 10, a real setting) make the
        # domain's full replication take many round trips: the stop lands between two
        # of them. The same tenant and state directory as $DomainConfig (a sibling file), so
        # the next cycle with $DomainConfig resumes what was stopped. The stopped cycle runs
        # in a child pwsh, as a scheduled job would.
        $slowText = Get-Content -Raw -LiteralPath $DomainConfig
        if ($slowText -match '(?m)^\[sync\]\s*$') {
            $slowText = $slowText -replace '(?m)^\[sync\]\s*$', "[sync]`nbatch_size = 10"
        } else {
            $slowText += "`n[sync]`nbatch_size = 10`n"
        }
        $SlowConfig = Join-Path (Split-Path $DomainConfig) 'domain-batch10.toml'
        Set-Content -LiteralPath $SlowConfig -Value $slowText
        $stopScript = @'
$ErrorActionPreference = 'Stop'
$config = $env:PHSYNC_PS_STOP_CONFIG
Import-Module PasswordHashSync
$ps = [powershell]::Create()
[void]$ps.AddCommand('Import-Module').AddArgument('PasswordHashSync')
[void]$ps.Invoke()
$ps.Commands.Clear()
[void]$ps.AddCommand('Invoke-PasswordHashSync').AddParameter('ConfigPath', $config).AddParameter('Full')
$handle = $ps.BeginInvoke()
$deadline = [DateTime]::UtcNow.AddSeconds(90)
$seen = $null
$i = 0
while (-not $seen -and -not $handle.IsCompleted -and [DateTime]::UtcNow -lt $deadline) {
    while (-not $seen -and $i -lt $ps.Streams.Progress.Count) {
        $rec = $ps.Streams.Progress[$i]
        $i++
        if ($rec.StatusDescription -like 'replicate: * of 0' -and $rec.StatusDescription -notlike 'replicate: 0 of*') { $seen = $rec }
    }
    if (-not $seen) { Start-Sleep -Milliseconds 10 }
}
$completedBeforeStop = $handle.IsCompleted
$sw = [Diagnostics.Stopwatch]::StartNew()
$ps.Stop()
$stopMs = $sw.ElapsedMilliseconds
$endInvoke = 'returned'
try { [void]$ps.EndInvoke($handle) } catch { $x = $_.Exception.GetBaseException(); $endInvoke = $x.GetType().Name + ': ' + $x.Message }
$status = Get-PasswordHashSyncStatus -ConfigPath $config
[pscustomobject]@{
    Seen                = if ($seen) { $seen.StatusDescription } else { $null }
    CompletedBeforeStop = $completedBeforeStop
    StopMs              = $stopMs
    State               = "$($ps.InvocationStateInfo.State)"
    EndInvoke           = $endInvoke
    Errors              = @($ps.Streams.Error | ForEach-Object { $_.FullyQualifiedErrorId })
    LastOk              = $status.LastCycle.Ok
    LastError           = $status.LastCycle.Error
    LastApplied         = $status.LastCycle.Applied
    LastStale           = $status.LastCycle.Stale
    LastInScope         = $status.LastCycle.InScope
} | ConvertTo-Json -Compress
'@
        $child = Invoke-ChildPwsh -Script $stopScript -TimeoutSeconds 150 -Environment @{
            PHSYNC_PS_STOP_CONFIG = $SlowConfig
        }
        $Stopped = ConvertFrom-ChildJson $child
        Write-Host "    stopped at '$($Stopped.Seen)' in $($Stopped.StopMs) ms; $($Stopped.LastApplied) applied, $($Stopped.LastStale) current of $($Stopped.LastInScope) in scope"
    }

    It 'stops within 2 s while the domain is being replicated' {
        $Stopped.Seen | Should -BeLike 'replicate: * of 0'
        $Stopped.CompletedBeforeStop | Should -BeFalse
        $Stopped.StopMs | Should -BeLessThan 2000
        $Stopped.State | Should -Be 'Stopped'
        $Stopped.EndInvoke | Should -BeLike 'PipelineStoppedException*'
    }

    It 'records the stopped cycle as not ok, part applied' {
        $Stopped.LastOk | Should -BeFalse
        $Stopped.LastError | Should -Match 'stopped'
        ($Stopped.LastApplied + $Stopped.LastStale) | Should -BeLessThan $Stopped.LastInScope
    }

    It 'converges on the next cycle: Ok, and every seeded user signs in' {
        $r = Invoke-PasswordHashSync -ConfigPath $DomainConfig -ErrorAction SilentlyContinue -ErrorVariable err
        $err | ForEach-Object { "$_" } | Should -BeNullOrEmpty
        $r.Ok | Should -BeTrue
        $r.Failed | Should -Be 0
        $users = Get-LabAccounts | Where-Object {
            $_.Upn -and $_.Flags -contains 'user' -and -not ($_.Flags | Where-Object { $_ -in 'disabled', 'must-change', 'no-upn' })
        }
        @($users).Count | Should -BeGreaterThan 3
        foreach ($u in $users) {
            (Test-CloudSignIn $u.Upn (ConvertTo-Secure $u.Password) -Tenant $DomainTenant).Result | Should -Be 'success' -Because "$($u.Sam) was synced"
        }
    }
}

Describe 'Start-PasswordHashSync' {
    BeforeAll {
        # Its own copy of the Demo config (fresh state and tenant): the run's events and
        # notification state stay out of the other blocks' checks.
        $RunConfig = Copy-EngineConfig $Config (Join-Path $Scratch 'run')
        $RunTenant = Join-Path (Split-Path $RunConfig) 'tenant.db'
        $ps = [powershell]::Create()
        [void]$ps.AddScript('param($c) Import-Module PasswordHashSync -ErrorAction Stop; Start-PasswordHashSync -ConfigPath $c -Verbose').AddArgument($RunConfig)
        $handle = $ps.BeginInvoke()
        # Until the first cycle is done, the notification search is open and the cmdlet has
        # written the cycle's and the connection's events (it reads the event log every 500 ms),
        # or 60 s.
        $deadline = [DateTime]::UtcNow.AddSeconds(60)
        $Running = $null
        $connectedEventWritten = {
            $ids = @{}
            for ($k = 0; $k -lt $ps.Streams.Verbose.Count; $k++) {
                if ($ps.Streams.Verbose[$k].Message -match ' (601|690) info: ') { $ids[$Matches[1]] = $true }
            }
            $ids.Count -eq 2
        }
        while ([DateTime]::UtcNow -lt $deadline -and -not $handle.IsCompleted) {
            $s = Get-PasswordHashSyncStatus -ConfigPath $RunConfig -ErrorAction SilentlyContinue
            if ($s -and $s.NotificationsLive -and $s.LastCycle -and $s.LastCycle.Ok -and (& $connectedEventWritten)) { $Running = $s; break }
            Start-Sleep -Milliseconds 200
        }
        $RunningBeforeStop = -not $handle.IsCompleted
        $SignIn = (Test-CloudSignIn $Demo.Upn $DemoPassword -Tenant $RunTenant).Result
        $sw = [Diagnostics.Stopwatch]::StartNew()
        $ps.Stop()
        $RunStopMs = $sw.ElapsedMilliseconds
        $RunEnd = 'returned'
        try { [void]$ps.EndInvoke($handle) } catch { $RunEnd = $_.Exception.GetBaseException().GetType().Name }
        $RunState = "$($ps.InvocationStateInfo.State)"
        $RunVerbose = @($ps.Streams.Verbose | ForEach-Object { $_.Message })
        $RunProgress = @($ps.Streams.Progress)
        $RunErrors = @($ps.Streams.Error | ForEach-Object { "$_" })
        $ps.Dispose()
        $After = Get-PasswordHashSyncStatus -ConfigPath $RunConfig
        Write-Host "    notifications $($Running.Notifications); stopped in $RunStopMs ms"
    }

    It 'runs the first cycle and keeps the change notifications live until stopped' {
        $RunErrors | Should -BeNullOrEmpty
        $RunningBeforeStop | Should -BeTrue
        $Running | Should -Not -BeNullOrEmpty -Because 'the notifications were live and a cycle done within 60 s'
        $Running.Notifications | Should -BeOfType ([PasswordHashSync.NotificationStatus])
        $Running.Notifications.State | Should -Be 'connected'
        $Running.Notifications.Live | Should -BeTrue
        $Running.Notifications.Since | Should -BeOfType ([DateTimeOffset])
        $Running.Notifications.Detail | Should -BeLike 'ldap*'
        $Running.Notifications.Source | Should -Be 'notifications'
        $Running.Notifications.ProcessId | Should -Be $PID -Because 'the run is in this PowerShell process'
        $Running.Notifications.HeartbeatAt | Should -BeOfType ([DateTimeOffset])
        $Running.Notifications.Stats | Should -BeOfType ([PasswordHashSync.ChangeSyncStats])
        $Running.LastCycle.InScope | Should -Be 2
        $SignIn | Should -Be 'success'
    }

    It 'writes the engine''s events as verbose messages and its state as progress' {
        ($RunVerbose -join "`n") | Should -Match ' 601 info: '
        ($RunVerbose -join "`n") | Should -Match ' 690 info: change notifications'
        $RunProgress.Count | Should -BeGreaterThan 0
        $RunProgress[0].Activity | Should -Match 'Password hash sync'
        ($RunProgress | Where-Object StatusDescription -Like 'notifications: connected*') | Should -Not -BeNullOrEmpty
    }

    It 'stops within 5 s on PowerShell.Stop() (Ctrl+C), and the status shows the notifications stopped' {
        $RunStopMs | Should -BeLessThan 5000
        $RunState | Should -Be 'Stopped'
        $RunEnd | Should -Be 'PipelineStoppedException'
        $After.Notifications.State | Should -Be 'stopped'
        $After.Notifications.Live | Should -BeFalse
        $After.NotificationsLive | Should -BeFalse
        @(Get-PasswordHashSyncEvent -ConfigPath $RunConfig -Id 601, 602).Id | Should -Be @(601, 602)
    }

    It '-WhatIf runs nothing' {
        $fresh = Copy-EngineConfig $Config (Join-Path $Scratch 'run-whatif')
        Start-PasswordHashSync -ConfigPath $fresh -WhatIf | Should -BeNullOrEmpty
        @(Get-PasswordHashSyncEvent -ConfigPath $fresh).Count | Should -Be 0
        $s = Get-PasswordHashSyncStatus -ConfigPath $fresh
        $s.Notifications | Should -BeNullOrEmpty
        $s.LastCycle | Should -BeNullOrEmpty
    }

    It 'stops with PhsyncConfigNotFound when the config is missing' {
        $e = Get-TerminatingError { Start-PasswordHashSync -ConfigPath $NoConfig }
        $e.FullyQualifiedErrorId | Should -BeLike 'PhsyncConfigNotFound,*'
        $e.TargetObject | Should -Be $NoConfig
    }
}

Describe 'Get-PasswordHashSyncStatus' {
    It 'returns one PasswordHashSyncStatus with the last cycle and the users' {
        $s = @(Get-PasswordHashSyncStatus -ConfigPath $Config)
        $s.Count | Should -Be 1
        $s = $s[0]
        $s | Should -BeOfType ([PasswordHashSync.PasswordHashSyncStatus])
        $s.ConfigPath | Should -Be $Config
        $s.LastCycle | Should -BeOfType ([PasswordHashSync.LastSyncCycle])
        $s.LastCycle.Mode | Should -BeIn @('full', 'incremental')
        $s.LastCycle.FinishedAt | Should -BeOfType ([DateTimeOffset])
        $s.LastCycle.StartedAt | Should -BeOfType ([DateTimeOffset])
        $s.LastCycle.Ok | Should -BeTrue
        $s.LastCycle.InScope | Should -Be 2
        $s.LastCycle.Failed | Should -Be 0
        $s.LastCycle.Error | Should -BeNullOrEmpty
        $s.LastCycleOk | Should -BeTrue
        $s.LastCycleFinishedAt | Should -Be $s.LastCycle.FinishedAt
        # Start-PasswordHashSync never ran on this config.
        $s.Notifications | Should -BeNullOrEmpty
        $s.NotificationsLive | Should -BeFalse
        $s.UserCount | Should -Be 2
        $s.FailedUserCount | Should -Be 0
        $s.Users.SamAccountName | Sort-Object | Should -Be @('demo1', 'demo2')
    }

    It 'returns a UserSyncStatus with History for -UserName' {
        $u = Get-PasswordHashSyncStatus -ConfigPath $Config -UserName $Demo.Sam
        $u | Should -BeOfType ([PasswordHashSync.UserSyncStatus])
        $u.SamAccountName | Should -Be $Demo.Sam
        $u.Status | Should -Be 'Success'
        @($u.History).Count | Should -BeGreaterOrEqual 1
        $u.History[0] | Should -BeOfType ([PasswordHashSync.SyncHistoryEntry])
        $u.History[0].At | Should -BeOfType ([DateTimeOffset])
        $u.History[0].Status | Should -Not -BeNullOrEmpty
    }

    It 'takes user names from the pipeline and ConfigPath by position' {
        $r = @('demo1', 'demo2') | Get-PasswordHashSyncStatus $Config
        $r.SamAccountName | Should -Be @('demo1', 'demo2')
        ([pscustomobject]@{ SamAccountName = 'demo2' } | Get-PasswordHashSyncStatus -ConfigPath $Config).SamAccountName | Should -Be 'demo2'
    }

    It 'takes ConfigPath from the pipeline by property name' {
        $saved = $env:PHSYNC_CONFIG
        try {
            $env:PHSYNC_CONFIG = $null
            $s = [pscustomobject]@{ ConfigPath = $Config } | Get-PasswordHashSyncStatus
            $s.ConfigPath | Should -Be $Config
        } finally {
            $env:PHSYNC_CONFIG = $saved
        }
    }

    It 'uses $env:PHSYNC_CONFIG without -ConfigPath' {
        $saved = $env:PHSYNC_CONFIG
        try {
            $env:PHSYNC_CONFIG = $Config
            (Get-PasswordHashSyncStatus).ConfigPath | Should -Be $Config
        } finally {
            $env:PHSYNC_CONFIG = $saved
        }
    }

    It 'reports an unknown user as PHS_E_NOT_FOUND' {
        Get-PasswordHashSyncStatus -ConfigPath $Config -UserName 'no-such-user' -ErrorAction SilentlyContinue -ErrorVariable err | Should -BeNullOrEmpty
        $err[0].FullyQualifiedErrorId | Should -BeLike 'PHS_E_NOT_FOUND,*'
    }

    It 'stops with PhsyncConfigNotFound when the config is missing' {
        (Get-TerminatingError { Get-PasswordHashSyncStatus -ConfigPath $NoConfig }).FullyQualifiedErrorId | Should -BeLike 'PhsyncConfigNotFound,*'
    }
}

Describe 'Test-PasswordHashSyncConnection' {
    It 'passes or skips every check against the lab config' {
        $checks = @(Test-PasswordHashSyncConnection -ConfigPath $Config)
        $checks | ForEach-Object { $_ | Should -BeOfType ([PasswordHashSync.ConnectionCheck]) }
        $checks.Name | Should -Be $CheckNames
        foreach ($c in $checks) {
            $c.Result | Should -BeIn @('passed', 'skipped') -Because "$($c.Name): $($c.Detail)"
            $c.Detail | Should -Not -BeNullOrEmpty
        }
        foreach ($n in 'config', 'dc_reachable', 'ldap_bind', 'drsr_bind', 'replication_rights', 'tenant_reachable') {
            ($checks | Where-Object Name -EQ $n).Passed | Should -BeTrue -Because $n
        }
        "$($checks.Detail)" | Should -Not -Match ([regex]::Escape((Get-Content -Raw (Join-Path (Split-Path $Config) 'replicator.pw')).Trim()))
    }

    It '-Quiet returns $true, ConfigPath by position' {
        $r = Test-PasswordHashSyncConnection $Config -Quiet
        $r | Should -BeOfType ([bool])
        $r | Should -BeTrue
    }

    It 'fails ldap_bind and skips what depends on it with a wrong replicator password' {
        $checks = Test-PasswordHashSyncConnection -ConfigPath $WrongPassword
        $by = @{}; $checks | ForEach-Object { $by[$_.Name] = $_ }
        $by.dc_reachable.Result | Should -Be 'passed'
        $by.ldap_bind.Result | Should -Be 'failed'
        $by.drsr_bind.Result | Should -Be 'skipped'
        $by.replication_rights.Result | Should -Be 'skipped'
        $by.drsr_bind.Detail | Should -Match 'ldap_bind'
        "$($checks.Detail)" | Should -Not -Match 'Wrong-Passw0rd-1'
        Test-PasswordHashSyncConnection -ConfigPath $WrongPassword -Quiet | Should -BeFalse
    }

    It 'fails dc_reachable and skips the directory checks when the DC is unreachable' {
        $by = @{}; Test-PasswordHashSyncConnection -ConfigPath $Unreachable | ForEach-Object { $by[$_.Name] = $_ }
        $by.dc_reachable.Result | Should -Be 'failed'
        $by.dc_reachable.Detail | Should -Match '127\.0\.0\.1:1\b'
        foreach ($n in 'ldap_bind', 'drsr_bind', 'replication_rights') { $by[$n].Result | Should -Be 'skipped' }
    }

    It 'checks a tenant service: reachable, CA trusted, token valid; and a bogus token or a wrong CA' {
        $url = Get-FixtureValue PHSYNC_PS_REMOTE_URL
        $token = Get-FixtureValue PHSYNC_PS_REMOTE_TOKEN
        $bogus = Get-FixtureValue PHSYNC_PS_REMOTE_BOGUS_TOKEN
        $ca = Get-FixtureValue PHSYNC_PS_REMOTE_CA
        $remote = { param($dir, $tok, $caFile)
            Copy-EngineConfig $Config (Join-Path $Scratch $dir) -Replace @{ 'tenant = "tenant.db"' = "tenant = `"$url`"`ntoken_file = `"$tok`"`nca_file = `"$caFile`"" }
        }
        $by = @{}; Test-PasswordHashSyncConnection (& $remote 'remote-ok' $token $ca) | ForEach-Object { $by[$_.Name] = $_ }
        foreach ($n in 'tenant_reachable', 'ca_trusted', 'token_valid') { $by[$n].Result | Should -Be 'passed' -Because "$n`: $($by[$n].Detail)" }
        $by = @{}; Test-PasswordHashSyncConnection (& $remote 'remote-bogus' $bogus $ca) | ForEach-Object { $by[$_.Name] = $_ }
        $by.token_valid.Result | Should -Be 'failed'
        $by = @{}; Test-PasswordHashSyncConnection (& $remote 'remote-wrong-ca' $token (Get-FixtureValue PHSYNC_LAB_CA_FILE)) | ForEach-Object { $by[$_.Name] = $_ }
        $by.ca_trusted.Result | Should -Be 'failed'
        $by.token_valid.Result | Should -Be 'skipped'
    }

    It 'stops with PhsyncConfigNotFound when the config is missing' {
        (Get-TerminatingError { Test-PasswordHashSyncConnection -ConfigPath $NoConfig }).FullyQualifiedErrorId | Should -BeLike 'PhsyncConfigNotFound,*'
    }
}

Describe 'Get-PasswordHashSyncEvent' {
    BeforeAll {
        # A mark, then one more (incremental) cycle: -After $Mark is what that cycle logged.
        $Mark = [DateTimeOffset]::UtcNow
        Start-Sleep -Milliseconds 50
        Invoke-PasswordHashSync -ConfigPath $Config -ErrorAction Stop | Out-Null
        $All = @(Get-PasswordHashSyncEvent -ConfigPath $Config)
    }

    It 'lists the events of the cycles, oldest first' {
        $All.Count | Should -BeGreaterThan 0
        foreach ($e in $All) {
            $e | Should -BeOfType ([PasswordHashSync.SyncEvent])
            $e.TimeCreated | Should -BeOfType ([DateTimeOffset])
            $e.Id | Should -BeGreaterThan 600
            $e.Level | Should -BeIn @('info', 'warning', 'error')
            $e.Message | Should -Not -BeNullOrEmpty
            $e.Data | Should -BeOfType ([hashtable])
        }
        for ($i = 1; $i -lt $All.Count; $i++) { $All[$i].TimeCreated | Should -BeGreaterOrEqual $All[$i - 1].TimeCreated }
        $All.Id | Should -Contain 618   # full sync started for the domain
        ($All | Where-Object Id -EQ 618 | Select-Object -First 1).Data.domain | Should -Be (Get-FixtureValue PHSYNC_LAB_DOMAIN)
    }

    It '-Id filters' {
        $r = @(Get-PasswordHashSyncEvent -ConfigPath $Config -Id 618)
        $r.Count | Should -Be (@($All | Where-Object Id -EQ 618).Count)
        $r.Id | Sort-Object -Unique | Should -Be 618
        $two = @(Get-PasswordHashSyncEvent -ConfigPath $Config -Id 617, 618)
        $two.Id | Sort-Object -Unique | Should -Be @(617, 618)
    }

    It '-Newest 1 returns the newest event' {
        $r = @(Get-PasswordHashSyncEvent $Config -Newest 1)
        $r.Count | Should -Be 1
        $latest = @(Get-PasswordHashSyncEvent -ConfigPath $Config)[-1]
        $r[0].TimeCreated | Should -Be $latest.TimeCreated
        $r[0].Id | Should -Be $latest.Id
    }

    It '-After in the future returns none; -After a time returns only what came later' {
        Get-PasswordHashSyncEvent -ConfigPath $Config -After ([DateTimeOffset]::UtcNow.AddHours(1)) | Should -BeNullOrEmpty
        $later = @(Get-PasswordHashSyncEvent -ConfigPath $Config -After $Mark)
        $later.Count | Should -BeGreaterThan 0
        $later.Count | Should -BeLessThan (@(Get-PasswordHashSyncEvent -ConfigPath $Config).Count)
        $later | ForEach-Object { $_.TimeCreated | Should -BeGreaterThan $Mark }
        $later.Id | Should -Contain 650   # the incremental cycle started after the mark
    }

    It 'logs a domain failure (611) as an error' {
        $e = @(Get-PasswordHashSyncEvent -ConfigPath $Unreachable -Id 611)
        $e.Count | Should -BeGreaterThan 0
        $e[0].Level | Should -Be 'error'
    }

    It 'validates -Id and stops without a config' {
        { Get-PasswordHashSyncEvent -ConfigPath $Config -Id 0 } | Should -Throw -ErrorId 'ParameterArgumentValidationError,*'
        (Get-TerminatingError { Get-PasswordHashSyncEvent -ConfigPath $NoConfig }).FullyQualifiedErrorId | Should -BeLike 'PhsyncConfigNotFound,*'
    }
}
