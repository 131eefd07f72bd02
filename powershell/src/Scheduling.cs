// Scheduled runs of Invoke-PasswordHashSync: a systemd service and timer, a cron entry, or a
// Windows scheduled task. The job imports the module by name (an update does not break it),
// exits non-zero when the cycle or a user failed, never overlaps itself (oneshot service,
// flock for cron, IgnoreNew for the task) and has no time limit (a first full sync of a large
// domain takes long). Its PowerShell command travels as -EncodedCommand, so no shell, systemd
// or cron quoting rule can change it; the readable command is a comment beside it.
// Files carry a marker and the config path, which is how Get- and Unregister- find them.
// -Root writes under another folder (an image being built, or a test) and calls no systemctl.

using System;
using System.Collections;
using System.Collections.Generic;
using System.Collections.ObjectModel;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Management.Automation;
using System.Text;

namespace PasswordHashSync
{
    /// <summary>Where Register-PasswordHashSyncTask puts the job.</summary>
    public enum SchedulerKind
    {
        /// <summary>Windows: Task Scheduler; Linux: systemd when it runs, else cron.</summary>
        Auto,
        Systemd,
        Cron,
        TaskScheduler,
    }

    /// <summary>What Register-PasswordHashSyncTask asks for, validated.</summary>
    internal sealed class TaskRequest
    {
        public string Name;
        public string ConfigPath;
        public TimeSpan Interval;
        public string RunAs;
        public string Root;
        public string PowerShellPath;
        public SchedulerKind Kind;
    }

    internal static class Scheduling
    {
        internal const string Marker = "# Written by Register-PasswordHashSyncTask (PasswordHashSync module); Unregister-PasswordHashSyncTask removes it.";
        private const string ConfigTag = "# phsync-config: ";
        private const string IntervalTag = "# phsync-interval-seconds: ";
        private const string RunAsTag = "# phsync-run-as: ";
        private const string CommandTag = "# phsync-command: ";
        private const string TaskPath = "\\phsync\\";
        private const string TaskDescriptionPrefix = "PasswordHashSync: ";

        /// <summary>The PowerShell the job runs: import by name, one cycle, exit 1 unless it fully succeeded.</summary>
        internal static string JobScript(string config)
        {
            return "$ErrorActionPreference = 'Continue'; Import-Module PasswordHashSync -ErrorAction Stop; " +
                   "$r = Invoke-PasswordHashSync -ConfigPath " + Quote(config) + " -ErrorVariable failed; " +
                   "if ($r) { 'phsync {0} cycle: ok={1} in_scope={2} applied={3} failed={4} retry_queued={5}' -f $r.Mode, $r.Ok, $r.InScope, $r.Applied, $r.Failed, $r.RetryQueued }; " +
                   "if ($failed -or -not $r -or -not $r.Ok) { exit 1 }";
        }

        internal static string Quote(string s)
        {
            return "'" + s.Replace("'", "''") + "'";
        }

        internal static string Encode(string script)
        {
            return Convert.ToBase64String(Encoding.Unicode.GetBytes(script));
        }

        internal static string UnitName(string name)
        {
            return name.ToLowerInvariant();
        }

        internal static string CronFileName(string name)
        {
            // cron ignores files in /etc/cron.d whose names contain a dot.
            return UnitName(name).Replace('.', '-');
        }

        internal static string Under(string root, string absolute)
        {
            if (string.IsNullOrEmpty(root)) return absolute;
            return Path.Combine(root, absolute.TrimStart('/'));
        }

        internal static bool IsWindows
        {
            get { return Native.PhsyncLibrary.IsWindows; }
        }

        internal static SchedulerKind Detect(string root)
        {
            if (IsWindows) return SchedulerKind.TaskScheduler;
            if (string.IsNullOrEmpty(root))
            {
                if (Directory.Exists("/run/systemd/system")) return SchedulerKind.Systemd;
                if (Directory.Exists("/etc/cron.d")) return SchedulerKind.Cron;
                throw new InvalidOperationException("Neither systemd (/run/systemd/system) nor cron (/etc/cron.d) was found; pass -Scheduler.");
            }
            if (Directory.Exists(Under(root, "/etc/systemd/system"))) return SchedulerKind.Systemd;
            if (Directory.Exists(Under(root, "/etc/cron.d"))) return SchedulerKind.Cron;
            throw new InvalidOperationException("Neither " + Under(root, "/etc/systemd/system") + " nor " + Under(root, "/etc/cron.d") + " exists; pass -Scheduler.");
        }

        // ---- systemd ----------------------------------------------------------------------

        /// <summary>A word of ExecStart: % and $ are systemd specifiers, quotes when it has blanks.</summary>
        internal static string SystemdWord(string s)
        {
            string e = s.Replace("%", "%%").Replace("$", "$$");
            if (e.IndexOfAny(new[] { ' ', '\t', '"', '\\', '\'' }) < 0) return e;
            return "\"" + e.Replace("\\", "\\\\").Replace("\"", "\\\"") + "\"";
        }

        internal static string Header(TaskRequest r, string script)
        {
            StringBuilder b = new StringBuilder();
            b.Append(Marker).Append('\n');
            b.Append(ConfigTag).Append(r.ConfigPath).Append('\n');
            b.Append(IntervalTag).Append(((long)r.Interval.TotalSeconds).ToString(CultureInfo.InvariantCulture)).Append('\n');
            if (!string.IsNullOrEmpty(r.RunAs)) b.Append(RunAsTag).Append(r.RunAs).Append('\n');
            b.Append(CommandTag).Append(script).Append('\n');
            return b.ToString();
        }

        internal static string[] SystemdFiles(TaskRequest r, out string service, out string timer, out string exec)
        {
            string unit = UnitName(r.Name);
            string script = JobScript(r.ConfigPath);
            exec = SystemdWord(r.PowerShellPath) + " -NoProfile -NonInteractive -EncodedCommand " + Encode(script);
            long seconds = (long)r.Interval.TotalSeconds;
            StringBuilder s = new StringBuilder(Header(r, script));
            s.Append("[Unit]\n");
            s.Append("Description=Password hash synchronization (PasswordHashSync module)\n");
            s.Append("Wants=network-online.target\nAfter=network-online.target\n\n");
            s.Append("[Service]\nType=oneshot\n");
            s.Append("ExecStart=").Append(exec).Append('\n');
            // A first full sync of a large domain takes long: no start timeout.
            s.Append("TimeoutStartSec=infinity\n");
            if (!string.IsNullOrEmpty(r.RunAs)) s.Append("User=").Append(r.RunAs).Append('\n');
            service = s.ToString();
            StringBuilder t = new StringBuilder(Header(r, script));
            t.Append("[Unit]\n");
            t.Append("Description=Run ").Append(unit).Append(".service every ").Append(r.Interval.ToString()).Append("\n\n");
            t.Append("[Timer]\nOnActiveSec=10s\nOnBootSec=1min\n");
            t.Append("OnUnitInactiveSec=").Append(seconds.ToString(CultureInfo.InvariantCulture)).Append("s\n");
            t.Append("AccuracySec=10s\n");
            t.Append("Unit=").Append(unit).Append(".service\n\n");
            t.Append("[Install]\nWantedBy=timers.target\n");
            timer = t.ToString();
            return new[]
            {
                Under(r.Root, "/etc/systemd/system/" + unit + ".service"),
                Under(r.Root, "/etc/systemd/system/" + unit + ".timer"),
            };
        }

        // ---- cron -------------------------------------------------------------------------

        /// <summary>The cron schedule: whole minutes dividing an hour, or whole hours dividing a day.</summary>
        internal static string CronSchedule(TimeSpan interval)
        {
            double minutes = interval.TotalMinutes;
            if (minutes == Math.Floor(minutes) && minutes < 60 && 60 % (int)minutes == 0)
                return "*/" + ((int)minutes).ToString(CultureInfo.InvariantCulture) + " * * * *";
            if (minutes == Math.Floor(minutes) && minutes % 60 == 0 && minutes <= 1440 && 1440 % (int)minutes == 0)
                return "0 */" + ((int)(minutes / 60)).ToString(CultureInfo.InvariantCulture) + " * * *";
            return null;
        }

        internal static string ShellWord(string s)
        {
            if (s.Length > 0 && s.IndexOfAny(new[] { ' ', '\t', '\'', '"', '\\', '$', '`', ';', '&', '|', '<', '>', '(', ')', '*', '?', '#', '~' }) < 0)
                return s.Replace("%", "\\%");
            return "'" + s.Replace("'", "'\\''").Replace("%", "\\%") + "'";
        }

        internal static string CronLine(TaskRequest r, string schedule)
        {
            string unit = CronFileName(r.Name);
            string user = string.IsNullOrEmpty(r.RunAs) ? "root" : r.RunAs;
            // flock -n -E 0: a run still going makes the next one a no-op (exit 0), never a second sync.
            return schedule + " " + user + " flock -n -E 0 /run/lock/phsync-" + unit + ".lock " +
                   ShellWord(r.PowerShellPath) + " -NoProfile -NonInteractive -EncodedCommand " + Encode(JobScript(r.ConfigPath));
        }

        // ---- files ------------------------------------------------------------------------

        internal static void WriteFile(string path, string content)
        {
            // Written whole to a temporary file, then moved: a failure leaves no half unit.
            string dir = Path.GetDirectoryName(path);
            if (!Directory.Exists(dir)) throw new DirectoryNotFoundException("The folder " + dir + " does not exist.");
            string tmp = path + ".tmp-" + Guid.NewGuid().ToString("N");
            File.WriteAllText(tmp, content, new UTF8Encoding(false));
            if (File.Exists(path)) File.Delete(path);
            File.Move(tmp, path);
        }

        internal static void Run(string file, params string[] args)
        {
            ProcessStartInfo psi = new ProcessStartInfo(file, string.Join(" ", args));
            psi.UseShellExecute = false;
            psi.RedirectStandardError = true;
            psi.RedirectStandardOutput = true;
            using (Process p = Process.Start(psi))
            {
                string err = p.StandardError.ReadToEnd();
                p.StandardOutput.ReadToEnd();
                p.WaitForExit();
                if (p.ExitCode != 0)
                    throw new InvalidOperationException(string.Format(CultureInfo.InvariantCulture,
                        "{0} {1} failed (exit code {2}): {3}", file, string.Join(" ", args), p.ExitCode, err.Trim()));
            }
        }

        // ---- Windows Task Scheduler (through the ScheduledTasks module) ----------------------

        internal static Collection<PSObject> Invoke(string command, IDictionary parameters)
        {
            using (PowerShell ps = PowerShell.Create(RunspaceMode.CurrentRunspace))
            {
                ps.AddCommand(command);
                foreach (DictionaryEntry p in parameters) ps.AddParameter((string)p.Key, p.Value);
                Collection<PSObject> result = ps.Invoke();
                if (ps.HadErrors && ps.Streams.Error.Count > 0)
                {
                    ErrorRecord e = ps.Streams.Error[0];
                    throw new InvalidOperationException(command + " failed: " + e.ToString(), e.Exception);
                }
                return result;
            }
        }

        internal static ScheduledSync RegisterWindows(TaskRequest r)
        {
            string script = JobScript(r.ConfigPath);
            string arguments = "-NoProfile -NonInteractive -ExecutionPolicy Bypass -EncodedCommand " + Encode(script);
            PSObject action = Invoke("New-ScheduledTaskAction", new Hashtable { { "Execute", r.PowerShellPath }, { "Argument", arguments } })[0];
            PSObject trigger = Invoke("New-ScheduledTaskTrigger", new Hashtable { { "Once", true }, { "At", DateTime.Now }, { "RepetitionInterval", r.Interval } })[0];
            Hashtable principalArgs = string.IsNullOrEmpty(r.RunAs)
                ? new Hashtable { { "UserId", "SYSTEM" }, { "LogonType", "ServiceAccount" }, { "RunLevel", "Highest" } }
                // A group managed service account: its password is fetched from AD (LogonType Password, no password given).
                : new Hashtable { { "UserId", r.RunAs }, { "LogonType", "Password" }, { "RunLevel", "Highest" } };
            PSObject principal = Invoke("New-ScheduledTaskPrincipal", principalArgs)[0];
            // No execution time limit (TimeSpan.Zero); a run still going makes the next one wait its turn out.
            PSObject settings = Invoke("New-ScheduledTaskSettingsSet", new Hashtable
            {
                { "MultipleInstances", "IgnoreNew" }, { "ExecutionTimeLimit", TimeSpan.Zero }, { "StartWhenAvailable", true },
            })[0];
            Invoke("Register-ScheduledTask", new Hashtable
            {
                { "TaskName", r.Name }, { "TaskPath", TaskPath }, { "Action", action }, { "Trigger", trigger },
                { "Principal", principal }, { "Settings", settings }, { "Force", true },
                { "Description", TaskDescriptionPrefix + r.ConfigPath },
            });
            return new ScheduledSync
            {
                Kind = "ScheduledTask", Name = TaskPath + r.Name, Interval = r.Interval, ConfigPath = r.ConfigPath,
                RunAs = string.IsNullOrEmpty(r.RunAs) ? "SYSTEM" : r.RunAs,
                Command = r.PowerShellPath + " " + arguments, Files = new string[0], Root = null,
            };
        }

        private static IEnumerable<ScheduledSync> FindWindows(WildcardPattern name)
        {
            Collection<PSObject> tasks;
            try
            {
                tasks = Invoke("Get-ScheduledTask", new Hashtable { { "TaskPath", TaskPath } });
            }
            catch (InvalidOperationException)
            {
                yield break; // no \phsync\ folder yet
            }
            foreach (PSObject t in tasks)
            {
                string taskName = Convert.ToString(t.Properties["TaskName"].Value, CultureInfo.InvariantCulture);
                if (!name.IsMatch(taskName)) continue;
                string description = Convert.ToString(t.Properties["Description"].Value, CultureInfo.InvariantCulture) ?? "";
                if (!description.StartsWith(TaskDescriptionPrefix, StringComparison.Ordinal)) continue;
                ScheduledSync s = new ScheduledSync
                {
                    Kind = "ScheduledTask", Name = TaskPath + taskName, ConfigPath = description.Substring(TaskDescriptionPrefix.Length),
                    Files = new string[0],
                };
                try
                {
                    PSObject trigger = PSObject.AsPSObject(((IEnumerable)t.Properties["Triggers"].Value).Cast0());
                    PSObject repetition = PSObject.AsPSObject(trigger.Properties["Repetition"].Value);
                    s.Interval = System.Xml.XmlConvert.ToTimeSpan(Convert.ToString(repetition.Properties["Interval"].Value, CultureInfo.InvariantCulture));
                    PSObject principal = PSObject.AsPSObject(t.Properties["Principal"].Value);
                    s.RunAs = Convert.ToString(principal.Properties["UserId"].Value, CultureInfo.InvariantCulture);
                    PSObject action = PSObject.AsPSObject(((IEnumerable)t.Properties["Actions"].Value).Cast0());
                    s.Command = action.Properties["Execute"].Value + " " + action.Properties["Arguments"].Value;
                }
                catch (Exception e) when (e is NullReferenceException || e is FormatException || e is InvalidCastException)
                {
                    // A task edited by hand: list it with what could be read.
                }
                yield return s;
            }
        }

        private static object Cast0(this IEnumerable e)
        {
            foreach (object o in e) return o;
            return null;
        }

        // ---- register, find, unregister ------------------------------------------------------

        internal static ScheduledSync Register(PSCmdlet cmdlet, TaskRequest r)
        {
            if (r.Kind == SchedulerKind.Auto) r.Kind = Detect(r.Root);
            switch (r.Kind)
            {
                case SchedulerKind.TaskScheduler:
                    if (!IsWindows) throw new PlatformNotSupportedException("Task Scheduler is Windows only; use -Scheduler Systemd or Cron.");
                    if (!cmdlet.ShouldProcess("scheduled task " + TaskPath + r.Name + " (every " + r.Interval + ", as " + (r.RunAs ?? "SYSTEM") + ")", "Register scheduled task")) return null;
                    return RegisterWindows(r);
                case SchedulerKind.Systemd:
                {
                    string service, timer, exec;
                    string[] files = SystemdFiles(r, out service, out timer, out exec);
                    string unit = UnitName(r.Name);
                    if (!cmdlet.ShouldProcess(files[0] + ", " + files[1] + (r.Root == null ? " and systemctl enable --now " + unit + ".timer" : ""), "Write systemd service and timer")) return null;
                    WriteFile(files[0], service);
                    WriteFile(files[1], timer);
                    if (string.IsNullOrEmpty(r.Root))
                    {
                        Run("systemctl", "daemon-reload");
                        Run("systemctl", "enable", "--now", unit + ".timer");
                    }
                    return new ScheduledSync
                    {
                        Kind = "SystemdTimer", Name = unit + ".timer", Interval = r.Interval, ConfigPath = r.ConfigPath,
                        RunAs = string.IsNullOrEmpty(r.RunAs) ? "root" : r.RunAs, Command = exec, Files = files, Root = r.Root ?? "/",
                    };
                }
                case SchedulerKind.Cron:
                {
                    string schedule = CronSchedule(r.Interval);
                    if (schedule == null)
                        throw new ArgumentException("cron cannot run every " + r.Interval + "; use whole minutes dividing an hour or whole hours dividing a day.");
                    string path = Under(r.Root, "/etc/cron.d/" + CronFileName(r.Name));
                    string line = CronLine(r, schedule);
                    if (!cmdlet.ShouldProcess(path, "Write cron entry")) return null;
                    WriteFile(path, Header(r, JobScript(r.ConfigPath)) + line + "\n");
                    return new ScheduledSync
                    {
                        Kind = "Cron", Name = path, Interval = r.Interval, ConfigPath = r.ConfigPath,
                        RunAs = string.IsNullOrEmpty(r.RunAs) ? "root" : r.RunAs, Command = line, Files = new[] { path }, Root = r.Root ?? "/",
                    };
                }
            }
            throw new ArgumentException("Unknown scheduler " + r.Kind);
        }

        /// <summary>Every job this module wrote whose name matches (wildcards), on every scheduler here.</summary>
        internal static List<ScheduledSync> Find(string name, string root)
        {
            WildcardPattern pattern = new WildcardPattern(string.IsNullOrEmpty(name) ? "*" : name, WildcardOptions.IgnoreCase);
            List<ScheduledSync> found = new List<ScheduledSync>();
            if (IsWindows && string.IsNullOrEmpty(root))
            {
                found.AddRange(FindWindows(pattern));
                return found;
            }
            string systemd = Under(root, "/etc/systemd/system");
            if (Directory.Exists(systemd))
            {
                foreach (string service in Directory.GetFiles(systemd, "*.service"))
                {
                    string unit = Path.GetFileNameWithoutExtension(service);
                    if (!pattern.IsMatch(unit)) continue;
                    ScheduledSync s = ReadOurs(service);
                    if (s == null) continue;
                    s.Kind = "SystemdTimer";
                    s.Name = unit + ".timer";
                    string timer = Path.Combine(systemd, unit + ".timer");
                    s.Files = File.Exists(timer) ? new[] { service, timer } : new[] { service };
                    s.Root = root ?? "/";
                    foreach (string l in File.ReadAllLines(service))
                        if (l.StartsWith("ExecStart=", StringComparison.Ordinal)) s.Command = l.Substring("ExecStart=".Length);
                    found.Add(s);
                }
            }
            string cron = Under(root, "/etc/cron.d");
            if (Directory.Exists(cron))
            {
                foreach (string file in Directory.GetFiles(cron))
                {
                    if (!pattern.IsMatch(Path.GetFileName(file))) continue;
                    ScheduledSync s = ReadOurs(file);
                    if (s == null) continue;
                    s.Kind = "Cron";
                    s.Name = file;
                    s.Files = new[] { file };
                    s.Root = root ?? "/";
                    foreach (string l in File.ReadAllLines(file))
                        if (l.Length > 0 && !l.StartsWith("#", StringComparison.Ordinal)) s.Command = l;
                    found.Add(s);
                }
            }
            return found;
        }

        /// <summary>The metadata of a file this module wrote, or null for any other file.</summary>
        private static ScheduledSync ReadOurs(string path)
        {
            string[] lines;
            try
            {
                lines = File.ReadAllLines(path);
            }
            catch (IOException)
            {
                return null;
            }
            catch (UnauthorizedAccessException)
            {
                return null;
            }
            if (lines.Length == 0 || lines[0] != Marker) return null;
            ScheduledSync s = new ScheduledSync { RunAs = "root" };
            foreach (string l in lines)
            {
                if (l.StartsWith(ConfigTag, StringComparison.Ordinal)) s.ConfigPath = l.Substring(ConfigTag.Length);
                else if (l.StartsWith(RunAsTag, StringComparison.Ordinal)) s.RunAs = l.Substring(RunAsTag.Length);
                else if (l.StartsWith(IntervalTag, StringComparison.Ordinal))
                {
                    long seconds;
                    if (long.TryParse(l.Substring(IntervalTag.Length), NumberStyles.None, CultureInfo.InvariantCulture, out seconds))
                        s.Interval = TimeSpan.FromSeconds(seconds);
                }
            }
            return s;
        }

        internal static void Unregister(PSCmdlet cmdlet, ScheduledSync s)
        {
            switch (s.Kind)
            {
                case "ScheduledTask":
                {
                    if (!cmdlet.ShouldProcess("scheduled task " + s.Name, "Unregister scheduled task")) return;
                    string taskName = s.Name.StartsWith(TaskPath, StringComparison.Ordinal) ? s.Name.Substring(TaskPath.Length) : s.Name;
                    Invoke("Unregister-ScheduledTask", new Hashtable { { "TaskName", taskName }, { "TaskPath", TaskPath }, { "Confirm", false } });
                    return;
                }
                case "SystemdTimer":
                {
                    if (!cmdlet.ShouldProcess(string.Join(", ", s.Files), "Stop and remove systemd service and timer")) return;
                    bool live = string.IsNullOrEmpty(s.Root) || s.Root == "/";
                    if (live) Run("systemctl", "disable", "--now", s.Name);
                    foreach (string f in s.Files) File.Delete(f);
                    if (live) Run("systemctl", "daemon-reload");
                    return;
                }
                case "Cron":
                    if (!cmdlet.ShouldProcess(s.Name, "Remove cron entry")) return;
                    File.Delete(s.Name);
                    return;
            }
            throw new ArgumentException("Unknown kind of scheduled sync: " + s.Kind);
        }
    }
}
