// The sync engine cmdlets: run a cycle or sync users now, read the engine's state and event
// log, and test every connection the engine needs.

using System;
using System.Collections.Generic;
using System.Globalization;
using System.Management.Automation;
using System.Threading;
using PasswordHashSync.Native;

namespace PasswordHashSync.Cmdlets
{
    /// <summary>Base of the engine cmdlets: -ConfigPath (else $env:PHSYNC_CONFIG), also by
    /// property name from the pipeline (Get-PasswordHashSyncTask | Get-PasswordHashSyncStatus),
    /// so it is resolved per input record, never once before the pipeline binds it.</summary>
    public abstract class EngineCmdlet : PhsCmdlet
    {
        /// <summary>-ConfigPath as bound. Each cmdlet declares the parameter itself: where a
        /// -UserName also takes strings from the pipeline, ConfigPath binds from the pipeline
        /// only in the other parameter set, or any object with a ConfigPath property (a
        /// ScheduledSync) would also bind to -UserName as its string form.</summary>
        protected abstract string ConfigPathArgument { get; }

        /// <summary>The absolute config path of the current input record.</summary>
        protected string Config { get; private set; }

        protected override void ProcessRecord()
        {
            Config = ResolveConfig(ConfigPathArgument);
            ProcessConfig();
        }

        /// <summary>The work for one input record, with Config resolved.</summary>
        protected abstract void ProcessConfig();
    }

    /// <summary>Invoke-PasswordHashSync: one sync cycle, or the named users now.</summary>
    [Cmdlet(VerbsLifecycle.Invoke, "PasswordHashSync", DefaultParameterSetName = "Cycle", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
    [OutputType(typeof(SyncCycleResult), ParameterSetName = new[] { "Cycle" })]
    [OutputType(typeof(UserSyncResult), ParameterSetName = new[] { "User" })]
    public sealed class InvokePasswordHashSyncCommand : EngineCmdlet
    {
        [Parameter(Position = 0, ParameterSetName = "Cycle", ValueFromPipelineByPropertyName = true)]
        [Parameter(Position = 0, ParameterSetName = "User")]
        [Alias("Config")]
        public string ConfigPath { get; set; }

        protected override string ConfigPathArgument { get { return ConfigPath; } }

        [Parameter(ParameterSetName = "Cycle")]
        public SwitchParameter Full { get; set; }

        [Parameter(Mandatory = true, ParameterSetName = "User", ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
        [Alias("SamAccountName", "Identity")]
        [ValidateNotNullOrEmpty]
        public string[] UserName { get; set; }

        // -UserName: the names of every input record, synced in EndProcessing with one engine.
        // In this set -ConfigPath does not bind from the pipeline, so it is the same for all.
        private readonly List<string> names = new List<string>();

        protected override void ProcessConfig()
        {
            if (ParameterSetName == "User")
            {
                foreach (string n in UserName)
                    if (!string.IsNullOrEmpty(n)) names.Add(n);
                return;
            }
            RunCycle();
        }

        protected override void EndProcessing()
        {
            if (names.Count == 0) return;
            if (!ShouldProcess(string.Join(", ", names.ToArray()) + " (" + Config + ")", "Synchronize password hashes now")) return;
            using (PhsyncEngine engine = OpenEngine(Config))
            {
                foreach (string n in names)
                {
                    if (StopRequested) throw new PipelineStoppedException();
                    UserSyncResult r;
                    try
                    {
                        r = UserSyncResult.FromJson(Json.ParseObject(engine.SyncUser(n)));
                    }
                    catch (Exception e) when (!(e is RuntimeException))
                    {
                        WriteError(ErrorFor(e, n));
                        continue;
                    }
                    WriteObject(r);
                    if (r.IsFailure) WriteError(UserFailure(r));
                }
            }
        }

        private void RunCycle()
        {
            if (!ShouldProcess(Config, "Run " + (Full ? "a full" : "an incremental") + " password hash sync cycle")) return;
            string activity = Full ? "Password hash sync (full)" : "Password hash sync";
            SyncCycleResult result;
            using (PhsyncEngine engine = OpenEngine(Config))
            {
                string json;
                try
                {
                    json = engine.SyncCycle(Full.IsPresent, (stage, done, total) =>
                    {
                        if (StopRequested) return false;
                        ProgressRecord p = new ProgressRecord(1, activity,
                            string.Format(CultureInfo.InvariantCulture, "{0}: {1} of {2}", stage, done, total));
                        p.PercentComplete = total > 0 ? (int)Math.Min(100, 100 * done / total) : -1;
                        WriteProgress(p);
                        return !StopRequested;
                    });
                }
                catch (PhsyncException e) when (e.Status == PhsyncStatus.Cancelled && StopRequested)
                {
                    // Stopped from Ctrl+C or PowerShell.Stop(): what was applied stays, the cursor did not move.
                    throw new PipelineStoppedException();
                }
                catch (Exception e) when (!(e is RuntimeException))
                {
                    ThrowTerminatingError(ErrorFor(e, Config));
                    return;
                }
                finally
                {
                    if (!StopRequested)
                    {
                        ProgressRecord done = new ProgressRecord(1, activity, "done");
                        done.RecordType = ProgressRecordType.Completed;
                        WriteProgress(done);
                    }
                }
                try
                {
                    result = SyncCycleResult.FromJson(Json.ParseObject(json));
                }
                catch (FormatException e)
                {
                    ThrowTerminatingError(ErrorFor(e, Config));
                    return;
                }
            }
            WriteObject(result);
            // Per-user failures: non-terminating errors after the result, so -ErrorAction and
            // $? tell a scheduled job that the cycle did not fully succeed.
            foreach (UserSyncResult u in result.Users)
                if (u.IsFailure) WriteError(UserFailure(u));
        }

        internal static ErrorRecord UserFailure(UserSyncResult u)
        {
            string message = string.Format(CultureInfo.InvariantCulture, "{0} ({1}): {2}: {3}",
                u.SamAccountName, u.UserPrincipalName, u.Status, u.Reason);
            ErrorRecord r = new ErrorRecord(new InvalidOperationException(message), u.Status, UserStatusCategory(u.Status), u);
            if (u.RetryState == "queued")
                r.ErrorDetails = new ErrorDetails(message) { RecommendedAction = "phsync retries it at " + u.NextRetryAt };
            return r;
        }
    }

    /// <summary>Start-PasswordHashSync: run the engine in the foreground until stopped (Ctrl+C,
    /// PowerShell.Stop(), Stop-Job): the first cycle, then change-driven sync from the DC's
    /// change notifications between periodic cycles (phs_engine_run, as phsync run).</summary>
    [Cmdlet(VerbsLifecycle.Start, "PasswordHashSync", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
    [OutputType(typeof(void))]
    public sealed class StartPasswordHashSyncCommand : EngineCmdlet
    {
        [Parameter(Position = 0, ValueFromPipelineByPropertyName = true)]
        [Alias("Config")]
        public string ConfigPath { get; set; }

        protected override string ConfigPathArgument { get { return ConfigPath; } }

        private const string Activity = "Password hash sync (running until stopped)";
        private static readonly TimeSpan EventPoll = TimeSpan.FromMilliseconds(500);
        private static readonly TimeSpan StatusPoll = TimeSpan.FromSeconds(5);

        // The engine while it runs; StopProcessing (another thread) stops it.
        private volatile PhsyncEngine running;

        protected override void StopProcessing()
        {
            base.StopProcessing();
            PhsyncEngine e = running;
            // A stop before phs_engine_run starts is kept: the run then returns at once.
            if (e != null) e.Stop();
        }

        protected override void ProcessConfig()
        {
            if (!ShouldProcess(Config, "Run password hash sync until stopped (first cycle, then change-driven sync between periodic cycles)")) return;
            long startedMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() - 1;
            using (PhsyncEngine engine = OpenEngine(Config))
            {
                Exception failure = null;
                Thread worker = new Thread(() =>
                {
                    try { engine.Run(); }
                    catch (Exception e) { failure = e; }
                });
                worker.IsBackground = true;
                worker.Name = "phsync-run";
                running = engine;
                if (StopRequested) engine.Stop();
                WriteVerbose("Running password hash sync for " + Config + " until stopped (Ctrl+C).");
                worker.Start();
                try
                {
                    Watch(worker, startedMs);
                }
                finally
                {
                    // Also when the pipeline stops or a write throws: the run ends before the
                    // engine is freed.
                    engine.Stop();
                    worker.Join();
                    running = null;
                }
                if (failure != null && !(failure is RuntimeException))
                {
                    ThrowTerminatingError(ErrorFor(failure, Config));
                    return;
                }
                if (failure != null) throw failure;
            }
            if (StopRequested) throw new PipelineStoppedException();
            WriteVerbose("Password hash sync stopped.");
        }

        /// <summary>Until the run ends: the engine's events as verbose messages, its state
        /// (notifications, last cycle) as progress, read through a second engine handle.</summary>
        private void Watch(Thread worker, long startedMs)
        {
            int written = 0;
            DateTime nextStatus = DateTime.UtcNow;
            PhsyncEngine watcher = null;
            try
            {
                while (!worker.Join(EventPoll))
                {
                    if (StopRequested) return;
                    written = WriteEvents(startedMs, written);
                    if (DateTime.UtcNow < nextStatus) continue;
                    nextStatus = DateTime.UtcNow + StatusPoll;
                    try
                    {
                        if (watcher == null) watcher = Lib.OpenEngine(Config);
                        JsonObject all = Json.ParseObject(watcher.SyncStatus());
                        NotificationStatus n = NotificationStatus.FromJson(all.Obj("notifications"));
                        LastSyncCycle c = LastSyncCycle.FromJson(all.Obj("last_cycle"));
                        string status = string.Format(CultureInfo.InvariantCulture, "notifications: {0}; last cycle: {1}",
                            n == null ? "-" : n.ToString(),
                            c == null || !c.FinishedAt.HasValue ? "-" : string.Format(CultureInfo.InvariantCulture, "{0:u} ({1})", c.FinishedAt.Value, c.Ok ? "ok" : (c.Error ?? "failed users")));
                        WriteProgress(new ProgressRecord(1, Activity, status));
                    }
                    catch (Exception e) when (!(e is RuntimeException))
                    {
                        WriteVerbose("Could not read the sync status: " + e.Message);
                    }
                }
                if (!StopRequested) WriteEvents(startedMs, written);
            }
            finally
            {
                if (watcher != null) watcher.Dispose();
                if (!StopRequested)
                {
                    ProgressRecord done = new ProgressRecord(1, Activity, "stopped");
                    done.RecordType = ProgressRecordType.Completed;
                    WriteProgress(done);
                }
            }
        }

        /// <summary>Write the events logged since the start, after the first `written`; the new count.</summary>
        private int WriteEvents(long startedMs, int written)
        {
            List<object> events;
            try
            {
                events = Json.ParseArray(Lib.Events(Config, null, startedMs, 0));
            }
            catch (Exception e) when (!(e is RuntimeException))
            {
                WriteVerbose("Could not read the event log: " + e.Message);
                return written;
            }
            for (int i = written; i < events.Count; i++)
            {
                JsonObject j = events[i] as JsonObject;
                if (j == null) continue;
                SyncEvent e = SyncEvent.FromJson(j);
                string line = string.Format(CultureInfo.InvariantCulture, "{0:u} {1} {2}: {3}", e.TimeCreated, e.Id, e.Level, e.Message);
                if (e.Level == "warning" || e.Level == "error") WriteWarning(line);
                else WriteVerbose(line);
            }
            return Math.Max(written, events.Count);
        }
    }

    /// <summary>Get-PasswordHashSyncStatus: per-user diagnostics, or the last cycle and the schedule.</summary>
    [Cmdlet(VerbsCommon.Get, "PasswordHashSyncStatus", DefaultParameterSetName = "Summary")]
    [OutputType(typeof(PasswordHashSyncStatus), ParameterSetName = new[] { "Summary" })]
    [OutputType(typeof(UserSyncStatus), ParameterSetName = new[] { "User" })]
    public sealed class GetPasswordHashSyncStatusCommand : EngineCmdlet, IDisposable
    {
        [Parameter(Position = 0, ParameterSetName = "Summary", ValueFromPipelineByPropertyName = true)]
        [Parameter(Position = 0, ParameterSetName = "User")]
        [Alias("Config")]
        public string ConfigPath { get; set; }

        protected override string ConfigPathArgument { get { return ConfigPath; } }

        // One engine per config for the whole pipeline (Get-ADUser | Get-PasswordHashSyncStatus).
        private PhsyncEngine engine;
        private string engineConfig;

        public void Dispose()
        {
            if (engine != null) engine.Dispose();
            engine = null;
        }

        [Parameter(Mandatory = true, ParameterSetName = "User", ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
        [Alias("SamAccountName", "Identity")]
        [ValidateNotNullOrEmpty]
        public string[] UserName { get; set; }

        /// <summary>Where scheduled tasks are looked for (as Register-PasswordHashSyncTask -Root).</summary>
        [Parameter(ParameterSetName = "Summary")]
        public string Root { get; set; }

        protected override void ProcessConfig()
        {
            if (engine == null || engineConfig != Config)
            {
                Dispose();
                engine = OpenEngine(Config);
                engineConfig = Config;
            }
            if (ParameterSetName == "User")
            {
                foreach (string n in UserName)
                {
                    if (string.IsNullOrEmpty(n)) continue;
                    try
                    {
                        WriteObject(UserSyncStatus.FromJson(Json.ParseObject(engine.UserStatus(n))));
                    }
                    catch (Exception e) when (!(e is RuntimeException))
                    {
                        WriteError(ErrorFor(e, n));
                    }
                }
                return;
            }
            JsonObject all;
            try
            {
                all = Json.ParseObject(engine.SyncStatus());
            }
            catch (Exception e) when (!(e is RuntimeException))
            {
                ThrowTerminatingError(ErrorFor(e, Config));
                return;
            }
            PasswordHashSyncStatus s = new PasswordHashSyncStatus();
            s.ConfigPath = Config;
            s.LastCycle = LastSyncCycle.FromJson(all.Obj("last_cycle"));
            s.Notifications = NotificationStatus.FromJson(all.Obj("notifications"));
            List<UserSyncResult> users = new List<UserSyncResult>();
            foreach (object u in all.Arr("users"))
            {
                JsonObject j = u as JsonObject;
                if (j != null) users.Add(UserSyncResult.FromJson(j));
            }
            s.Users = users.ToArray();
            s.UserCount = users.Count;
            s.FailedUserCount = users.FindAll(u => u.IsFailure).Count;
            List<ScheduledSync> tasks = new List<ScheduledSync>();
            try
            {
                foreach (ScheduledSync t in Scheduling.Find(null, string.IsNullOrEmpty(Root) ? null : FullPath(Root)))
                    if (string.Equals(t.ConfigPath, Config, StringComparison.Ordinal)) tasks.Add(t);
            }
            catch (Exception e) when (!(e is PipelineStoppedException))
            {
                WriteWarning("Could not read the scheduled tasks: " + e.Message);
            }
            s.ScheduledTasks = tasks.ToArray();
            if (tasks.Count > 0 && s.LastCycle != null && s.LastCycle.FinishedAt.HasValue)
            {
                TimeSpan shortest = TimeSpan.MaxValue;
                foreach (ScheduledSync t in tasks) if (t.Interval < shortest) shortest = t.Interval;
                s.NextCycleDueAt = s.LastCycle.FinishedAt.Value + shortest;
            }
            WriteObject(s);
        }
    }

    /// <summary>Test-PasswordHashSyncConnection: every connection the engine needs, one result per check.</summary>
    [Cmdlet(VerbsDiagnostic.Test, "PasswordHashSyncConnection")]
    [OutputType(typeof(ConnectionCheck))]
    [OutputType(typeof(bool))]
    public sealed class TestPasswordHashSyncConnectionCommand : EngineCmdlet
    {
        [Parameter(Position = 0, ValueFromPipelineByPropertyName = true)]
        [Alias("Config")]
        public string ConfigPath { get; set; }

        protected override string ConfigPathArgument { get { return ConfigPath; } }

        /// <summary>Return only $true (every check passed or was skipped) or $false.</summary>
        [Parameter]
        public SwitchParameter Quiet { get; set; }

        protected override void ProcessConfig()
        {
            JsonObject report;
            try
            {
                report = Json.ParseObject(Lib.CheckConnection(Config));
            }
            catch (Exception e) when (!(e is RuntimeException))
            {
                ThrowTerminatingError(ErrorFor(e, Config));
                return;
            }
            List<ConnectionCheck> checks = new List<ConnectionCheck>();
            foreach (object c in report.Arr("checks"))
            {
                JsonObject j = c as JsonObject;
                if (j != null) checks.Add(ConnectionCheck.FromJson(j));
            }
            if (Quiet)
            {
                WriteObject(report.Bool("ok"));
                return;
            }
            foreach (ConnectionCheck c in checks) WriteObject(c);
        }
    }

    /// <summary>Test-PasswordHashSyncQuality: the password-quality audit (phs_audit), one
    /// object per account and finding, or one per finding with -Summary.</summary>
    [Cmdlet(VerbsDiagnostic.Test, "PasswordHashSyncQuality")]
    [OutputType(typeof(PasswordQualityFinding))]
    [OutputType(typeof(PasswordQualitySummary))]
    public sealed class TestPasswordHashSyncQualityCommand : EngineCmdlet
    {
        [Parameter(Position = 0, ValueFromPipelineByPropertyName = true)]
        [Alias("Config")]
        public string ConfigPath { get; set; }

        protected override string ConfigPathArgument { get { return ConfigPath; } }

        /// <summary>Have I Been Pwned's "NTLM ordered by hash" file, or a sorted list of NT hashes.</summary>
        [Parameter]
        [ValidateNotNullOrEmpty]
        public string LeakedHashesPath { get; set; }

        /// <summary>A UTF-8 text file of weak passwords, one per line.</summary>
        [Parameter]
        [ValidateNotNullOrEmpty]
        public string WeakPasswordsPath { get; set; }

        /// <summary>Every user and computer account of the domain, not only the synced users.</summary>
        [Parameter]
        public SwitchParameter AllAccounts { get; set; }

        /// <summary>One object per finding with its count, instead of one per account.</summary>
        [Parameter]
        public SwitchParameter Summary { get; set; }

        protected override void ProcessConfig()
        {
            string leaked = LeakedHashesPath == null ? null : FullPath(LeakedHashesPath);
            string weak = WeakPasswordsPath == null ? null : FullPath(WeakPasswordsPath);
            JsonObject report;
            try
            {
                report = Json.ParseObject(Lib.Audit(Config, leaked, weak, AllAccounts));
            }
            catch (Exception e) when (!(e is RuntimeException))
            {
                ThrowTerminatingError(ErrorFor(e, Config));
                return;
            }
            foreach (object o in report.Arr("findings"))
            {
                JsonObject f = o as JsonObject;
                if (f == null) continue;
                if (Summary)
                {
                    WriteObject(PasswordQualitySummary.FromJson(report, f));
                    continue;
                }
                foreach (object a in f.Arr("accounts"))
                {
                    JsonObject acct = a as JsonObject;
                    if (acct != null) WriteObject(PasswordQualityFinding.FromJson(f, acct));
                }
            }
        }
    }

    /// <summary>Get-PasswordHashSyncEvent: the engine's event log, newest last.</summary>
    [Cmdlet(VerbsCommon.Get, "PasswordHashSyncEvent")]
    [OutputType(typeof(SyncEvent))]
    public sealed class GetPasswordHashSyncEventCommand : EngineCmdlet
    {
        [Parameter(Position = 0, ValueFromPipelineByPropertyName = true)]
        [Alias("Config")]
        public string ConfigPath { get; set; }

        protected override string ConfigPathArgument { get { return ConfigPath; } }

        /// <summary>Only these event IDs (601 start, 611 domain failure, 605 retry, ...).</summary>
        [Parameter]
        [ValidateRange(1, 65535)]
        public int[] Id { get; set; }

        /// <summary>Only events after this time.</summary>
        [Parameter]
        public DateTimeOffset? After { get; set; }

        /// <summary>Only the newest N events (after the other filters).</summary>
        [Parameter]
        [ValidateRange(1, int.MaxValue)]
        public int Newest { get; set; }

        protected override void ProcessConfig()
        {
            ushort[] ids = null;
            if (Id != null)
            {
                ids = new ushort[Id.Length];
                for (int i = 0; i < Id.Length; i++) ids[i] = (ushort)Id[i];
            }
            long after = After.HasValue ? After.Value.ToUnixTimeMilliseconds() : long.MinValue;
            List<object> events;
            try
            {
                events = Json.ParseArray(Lib.Events(Config, ids, after, (ulong)Math.Max(0, Newest)));
            }
            catch (Exception e) when (!(e is RuntimeException))
            {
                ThrowTerminatingError(ErrorFor(e, Config));
                return;
            }
            foreach (object e in events)
            {
                JsonObject j = e as JsonObject;
                if (j != null) WriteObject(SyncEvent.FromJson(j));
            }
        }
    }
}
