// Register-, Get- and Unregister-PasswordHashSyncTask: scheduled runs (see Scheduling.cs).

using System;
using System.Diagnostics;
using System.IO;
using System.Management.Automation;
using PasswordHashSync.Native;

namespace PasswordHashSync.Cmdlets
{
    /// <summary>Register-PasswordHashSyncTask: run Invoke-PasswordHashSync at an interval.</summary>
    [Cmdlet(VerbsLifecycle.Register, "PasswordHashSyncTask", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
    [OutputType(typeof(ScheduledSync))]
    public sealed class RegisterPasswordHashSyncTaskCommand : PhsCmdlet
    {
        [Parameter(Mandatory = true, Position = 0)]
        [Alias("Config")]
        public string ConfigPath { get; set; }

        [Parameter]
        public TimeSpan Interval { get; set; } = TimeSpan.FromMinutes(2);

        [Parameter]
        [ValidatePattern("^[A-Za-z0-9_.-]+$")]
        public string Name { get; set; } = "PasswordHashSync";

        /// <summary>Windows: the account (a gMSA such as CONTOSO\phsync$) the task runs as; default SYSTEM.
        /// Linux: the user of the service or cron entry; default root.</summary>
        [Parameter]
        [ValidatePattern("^[A-Za-z0-9_.\\\\$@-]+$")]
        public string RunAsAccount { get; set; }

        [Parameter]
        public SchedulerKind Scheduler { get; set; } = SchedulerKind.Auto;

        /// <summary>Write the files under this folder instead of / and do not call systemctl.</summary>
        [Parameter]
        public string Root { get; set; }

        /// <summary>The PowerShell executable the job starts. Default: the one running now.</summary>
        [Parameter]
        public string PowerShellPath { get; set; }

        protected override void EndProcessing()
        {
            string config = ResolveConfig(ConfigPath);
            if (config.IndexOfAny(new[] { '\n', '\r', '\0' }) >= 0)
                ThrowTerminatingError(UsageError("The config path contains a line break.", "PhsyncInvalidConfigPath", config));
            if (Interval < TimeSpan.FromMinutes(1) || Interval.Ticks % TimeSpan.TicksPerSecond != 0)
                ThrowTerminatingError(UsageError("-Interval must be whole seconds and at least one minute, got " + Interval + ".", "PhsyncInvalidInterval", Interval));
            string exe = PowerShellPath;
            if (string.IsNullOrEmpty(exe))
            {
                exe = CurrentPowerShell();
                if (exe == null)
                    ThrowTerminatingError(UsageError("Could not tell which PowerShell executable runs this session; pass -PowerShellPath.", "PhsyncNoPowerShellPath", null));
            }
            else
            {
                exe = FullPath(exe);
            }
            string root = string.IsNullOrEmpty(Root) ? null : FullPath(Root);
            if (root != null && !Directory.Exists(root))
                ThrowTerminatingError(new ErrorRecord(new DirectoryNotFoundException("-Root " + root + " does not exist."), "PhsyncRootNotFound", ErrorCategory.ObjectNotFound, root));
            WarnUnlessImportableByName();
            TaskRequest r = new TaskRequest
            {
                Name = Name, ConfigPath = config, Interval = Interval, RunAs = RunAsAccount, Root = root,
                PowerShellPath = exe, Kind = Scheduler,
            };
            ScheduledSync s;
            try
            {
                s = Scheduling.Register(this, r);
            }
            catch (Exception e) when (!(e is RuntimeException))
            {
                ErrorCategory c = e is UnauthorizedAccessException ? ErrorCategory.PermissionDenied
                    : e is PlatformNotSupportedException ? ErrorCategory.NotImplemented
                    : e is ArgumentException ? ErrorCategory.InvalidArgument
                    : ErrorCategory.WriteError;
                ThrowTerminatingError(new ErrorRecord(e, "PhsyncTaskRegistrationFailed", c, Name));
                return;
            }
            if (s != null) WriteObject(s);
        }

        /// <summary>The executable of this PowerShell: the process itself (pwsh, powershell.exe), or,
        /// when a host such as dotnet runs pwsh.dll (the .NET global tool), pwsh on PATH, else in $PSHOME.</summary>
        private string CurrentPowerShell()
        {
            string self;
            using (Process p = Process.GetCurrentProcess()) self = p.MainModule.FileName;
            string name = Path.GetFileNameWithoutExtension(self).ToLowerInvariant();
            if (name == "pwsh" || name == "powershell") return self;
            // pwsh on PATH first: under the .NET global tool, $PSHOME holds the version in its
            // path (an update would break the job) and sits in the installing user's home.
            string exeName = Scheduling.IsWindows ? "pwsh.exe" : "pwsh";
            foreach (string dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator))
            {
                if (dir.Length == 0) continue;
                string candidate = Path.Combine(dir, exeName);
                if (File.Exists(candidate)) return Path.GetFullPath(candidate);
            }
            string home = SessionState.PSVariable.GetValue("PSHOME") as string;
            if (!string.IsNullOrEmpty(home) && File.Exists(Path.Combine(home, exeName))) return Path.Combine(home, exeName);
            return null;
        }

        /// <summary>The job runs Import-Module PasswordHashSync by name in a fresh process.</summary>
        private void WarnUnlessImportableByName()
        {
            string modulePath = Environment.GetEnvironmentVariable("PSModulePath") ?? "";
            string parent = Path.GetDirectoryName(PhsyncModule.ModuleRoot.TrimEnd(Path.DirectorySeparatorChar));
            // A versioned folder (Modules/PasswordHashSync/0.2.0/) is found through Modules/ too.
            string grandParent = parent == null ? null : Path.GetDirectoryName(parent);
            foreach (string p in modulePath.Split(Path.PathSeparator))
            {
                if (p.Length == 0) continue;
                string full = p.TrimEnd(Path.DirectorySeparatorChar);
                if (string.Equals(full, parent, StringComparison.Ordinal) || string.Equals(full, grandParent, StringComparison.Ordinal)) return;
            }
            WriteWarning("The scheduled job imports the PasswordHashSync module by name, but this module (" + PhsyncModule.ModuleRoot +
                         ") is not in a folder of $env:PSModulePath. Install it in a module folder (for example " +
                         (Scheduling.IsWindows ? "$env:ProgramFiles\\PowerShell\\Modules" : "/usr/local/share/powershell/Modules") +
                         ") or the job will fail to import it.");
        }
    }

    /// <summary>Get-PasswordHashSyncTask: the scheduled runs this module registered.</summary>
    [Cmdlet(VerbsCommon.Get, "PasswordHashSyncTask")]
    [OutputType(typeof(ScheduledSync))]
    public sealed class GetPasswordHashSyncTaskCommand : PhsCmdlet
    {
        [Parameter(Position = 0)]
        [SupportsWildcards]
        public string Name { get; set; } = "*";

        [Parameter]
        public string Root { get; set; }

        protected override void EndProcessing()
        {
            try
            {
                string root = string.IsNullOrEmpty(Root) ? null : FullPath(Root);
                foreach (ScheduledSync s in Scheduling.Find(Name, root)) WriteObject(s);
            }
            catch (Exception e) when (!(e is RuntimeException))
            {
                ThrowTerminatingError(new ErrorRecord(e, "PhsyncTaskReadFailed", ErrorCategory.ReadError, Name));
            }
        }
    }

    /// <summary>Unregister-PasswordHashSyncTask: stop and remove scheduled runs.</summary>
    [Cmdlet(VerbsLifecycle.Unregister, "PasswordHashSyncTask", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium, DefaultParameterSetName = "Name")]
    public sealed class UnregisterPasswordHashSyncTaskCommand : PhsCmdlet
    {
        [Parameter(Mandatory = true, Position = 0, ParameterSetName = "Name")]
        [SupportsWildcards]
        public string Name { get; set; }

        [Parameter(ParameterSetName = "Name")]
        public string Root { get; set; }

        [Parameter(Mandatory = true, ValueFromPipeline = true, ParameterSetName = "InputObject")]
        public ScheduledSync InputObject { get; set; }

        protected override void ProcessRecord()
        {
            if (ParameterSetName == "InputObject")
            {
                Remove(InputObject);
                return;
            }
            string root = string.IsNullOrEmpty(Root) ? null : FullPath(Root);
            var found = Scheduling.Find(Name, root);
            if (found.Count == 0 && !WildcardPattern.ContainsWildcardCharacters(Name))
            {
                WriteError(new ErrorRecord(new ItemNotFoundException("No scheduled password hash sync named " + Name + " was found."),
                    "PhsyncTaskNotFound", ErrorCategory.ObjectNotFound, Name));
                return;
            }
            foreach (ScheduledSync s in found) Remove(s);
        }

        private void Remove(ScheduledSync s)
        {
            try
            {
                Scheduling.Unregister(this, s);
            }
            catch (Exception e) when (!(e is RuntimeException))
            {
                WriteError(new ErrorRecord(e, "PhsyncTaskUnregistrationFailed",
                    e is UnauthorizedAccessException ? ErrorCategory.PermissionDenied : ErrorCategory.WriteError, s.Name));
            }
        }
    }
}
