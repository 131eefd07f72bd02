// Module load (the native library and its ABI check) and what every cmdlet shares: resolving
// the config and tenant, opening the native handles, and turning failures into ErrorRecords
// whose ErrorId is the native status name.

using System;
using System.IO;
using System.Management.Automation;
using System.Text.RegularExpressions;
using PasswordHashSync.Native;

namespace PasswordHashSync
{
    /// <summary>Runs at Import-Module: loads native/&lt;rid&gt;/ and refuses a library of another ABI.</summary>
    public sealed class ModuleInitializer : IModuleAssemblyInitializer
    {
        public void OnImport()
        {
            // Throwing here fails Import-Module with this message, before any cmdlet is called blind.
            PhsyncModule.Library();
        }
    }

    /// <summary>The module's native library, loaded once per process.</summary>
    public static class PhsyncModule
    {
        /// <summary>The PHS_ABI_VERSION this module was built for (include/phsync.h).</summary>
        public const uint ExpectedAbiVersion = 2;

        private static readonly object Gate = new object();
        private static PhsyncLibrary library;

        /// <summary>The folder the module's DLL was loaded from (the module folder).</summary>
        public static string ModuleRoot
        {
            get { return Path.GetDirectoryName(typeof(PhsyncModule).Assembly.Location); }
        }

        /// <summary>The loaded library; throws when it is missing or of another ABI version.</summary>
        public static PhsyncLibrary Library()
        {
            lock (Gate)
            {
                if (library != null) return library;
                PhsyncLibrary lib = PhsyncLibrary.Load(ModuleRoot);
                uint abi;
                try
                {
                    abi = lib.AbiVersion();
                }
                catch (PhsyncMissingExportException)
                {
                    throw new PhsyncAbiMismatchException(ExpectedAbiVersion, 0, lib.Path);
                }
                if (abi != ExpectedAbiVersion) throw new PhsyncAbiMismatchException(ExpectedAbiVersion, abi, lib.Path);
                library = lib;
                return library;
            }
        }
    }

    /// <summary>The native library speaks another C ABI version than this module.</summary>
    public class PhsyncAbiMismatchException : Exception
    {
        public PhsyncAbiMismatchException(uint expected, uint found, string path)
            : base(string.Format(
                "The phsync native library {0} has C ABI version {1}, but this PasswordHashSync module needs version {2}. " +
                "Install the module and its native/ folder from the same phsync build (scripts/package-powershell).",
                path, found == 0 ? "unknown (no phs_abi_version)" : found.ToString(), expected))
        {
            Expected = expected;
            Found = found;
            LibraryPath = path;
        }

        public uint Expected { get; private set; }
        public uint Found { get; private set; }
        public string LibraryPath { get; private set; }
    }

    /// <summary>Base of the module's cmdlets.</summary>
    public abstract class PhsCmdlet : PSCmdlet
    {
        private volatile bool stopping;

        /// <summary>Set by StopProcessing (Ctrl+C, PowerShell.Stop()) on another thread.</summary>
        protected bool StopRequested { get { return stopping; } }

        protected override void StopProcessing()
        {
            stopping = true;
        }

        protected PhsyncLibrary Lib
        {
            get
            {
                try
                {
                    return PhsyncModule.Library();
                }
                catch (Exception e)
                {
                    ThrowTerminatingError(ErrorFor(e, null));
                    return null;
                }
            }
        }

        /// <summary>The ErrorRecord for a failure: native status name as id, category from it.</summary>
        internal static ErrorRecord ErrorFor(Exception e, object target)
        {
            PhsyncException p = e as PhsyncException;
            if (p != null) return new ErrorRecord(e, p.StatusName, Category(p.StatusName), target);
            if (e is PhsyncAbiMismatchException) return new ErrorRecord(e, "PhsyncAbiMismatch", ErrorCategory.InvalidOperation, target);
            PhsyncLibraryNotFoundException nf = e as PhsyncLibraryNotFoundException;
            if (nf != null) return new ErrorRecord(e, "PhsyncLibraryNotFound", ErrorCategory.ResourceUnavailable, target ?? nf.FileName);
            if (e is PhsyncMissingExportException) return new ErrorRecord(e, "PhsyncExportMissing", ErrorCategory.NotImplemented, target);
            if (e is DllNotFoundException) return new ErrorRecord(e, "PhsyncLibraryLoadFailed", ErrorCategory.ResourceUnavailable, target);
            if (e is FormatException) return new ErrorRecord(e, "PhsyncMalformedResult", ErrorCategory.InvalidResult, target);
            if (e is ArgumentException) return new ErrorRecord(e, "PhsyncInvalidArgument", ErrorCategory.InvalidArgument, target);
            return new ErrorRecord(e, "PhsyncError", ErrorCategory.NotSpecified, target);
        }

        /// <summary>The PowerShell category of a native status name (PHS_E_*).</summary>
        public static ErrorCategory Category(string statusName)
        {
            switch (statusName)
            {
                case "PHS_E_NULL_ARGUMENT":
                case "PHS_E_INVALID_UTF8":
                case "PHS_E_INVALID_ARGUMENT":
                case "PHS_E_PASSWORD_TOO_LONG":
                case "PHS_E_INVALID_PASSWORD":
                    return ErrorCategory.InvalidArgument;
                case "PHS_E_MALFORMED_DIGEST":
                case "PHS_E_CONFIG":
                    return ErrorCategory.InvalidData;
                case "PHS_E_BUFFER_TOO_SMALL":
                case "PHS_E_THROTTLED":
                    return ErrorCategory.LimitsExceeded;
                case "PHS_E_RANDOM":
                case "PHS_E_STATE":
                    return ErrorCategory.ResourceUnavailable;
                case "PHS_E_NOT_FOUND":
                    return ErrorCategory.ObjectNotFound;
                case "PHS_E_PASSWORD_POLICY":
                case "PHS_E_FIPS":
                    return ErrorCategory.SecurityError;
                case "PHS_E_CONFLICT":
                    return ErrorCategory.ResourceExists;
                case "PHS_E_STORAGE":
                    return ErrorCategory.WriteError;
                case "PHS_E_ACCESS_DENIED":
                    return ErrorCategory.PermissionDenied;
                case "PHS_E_UNREACHABLE":
                case "PHS_E_DIRECTORY":
                    return ErrorCategory.ConnectionError;
                case "PHS_E_REMOTE":
                case "PHS_E_REPLICATION":
                    return ErrorCategory.ProtocolError;
                case "PHS_E_CANCELLED":
                    return ErrorCategory.OperationStopped;
            }
            return ErrorCategory.NotSpecified;
        }

        /// <summary>The category of a per-user sync status that is a failure.</summary>
        public static ErrorCategory UserStatusCategory(string status)
        {
            switch (status)
            {
                case "MissingAttribute": return ErrorCategory.InvalidData;
                case "RetryRequestedByTarget": return ErrorCategory.ResourceBusy;
                case "NoTargetConnection": return ErrorCategory.ConnectionError;
                case "TargetNotExportedToDirectory": return ErrorCategory.ObjectNotFound;
                case "SourceConnectorNotPresent": return ErrorCategory.ObjectNotFound;
            }
            return ErrorCategory.NotSpecified;
        }

        protected static ErrorRecord UsageError(string message, string id, object target)
        {
            return new ErrorRecord(new ArgumentException(message), id, ErrorCategory.InvalidArgument, target);
        }

        protected string FullPath(string path)
        {
            return SessionState.Path.GetUnresolvedProviderPathFromPSPath(path);
        }

        /// <summary>-ConfigPath, else $env:PHSYNC_CONFIG, made absolute; it must exist (terminating otherwise).</summary>
        protected string ResolveConfig(string configPath)
        {
            if (string.IsNullOrEmpty(configPath)) configPath = Environment.GetEnvironmentVariable("PHSYNC_CONFIG");
            if (string.IsNullOrEmpty(configPath))
                ThrowTerminatingError(UsageError("No config file: pass -ConfigPath or set $env:PHSYNC_CONFIG.", "PhsyncNoConfig", null));
            string full = FullPath(configPath);
            if (!File.Exists(full))
            {
                ThrowTerminatingError(new ErrorRecord(new FileNotFoundException("Config file not found: " + full, full),
                    "PhsyncConfigNotFound", ErrorCategory.ObjectNotFound, full));
            }
            return full;
        }

        private static readonly Regex UrlTenant = new Regex("^(https?|postgres(ql)?)://", RegexOptions.IgnoreCase);
        private static readonly Regex ServiceTenant = new Regex("^https?://", RegexOptions.IgnoreCase);

        /// <summary>-Tenant, else $env:PHSYNC_TENANT; a file path is made absolute, URLs pass unchanged.</summary>
        protected string ResolveTenant(string tenant)
        {
            if (string.IsNullOrEmpty(tenant)) tenant = Environment.GetEnvironmentVariable("PHSYNC_TENANT");
            if (string.IsNullOrEmpty(tenant))
                ThrowTerminatingError(UsageError("No tenant: pass -Tenant or set $env:PHSYNC_TENANT.", "PhsyncNoTenant", null));
            return UrlTenant.IsMatch(tenant) ? tenant : FullPath(tenant);
        }

        /// <summary>A tenant for messages and error targets: a URL's password becomes ***
        /// (postgres://user:secret@host/db), as the native library shows it.</summary>
        internal static string TenantForDisplay(string tenant)
        {
            return UrlPassword.Replace(tenant, "$1:***@");
        }

        private static readonly Regex UrlPassword = new Regex("^([A-Za-z][A-Za-z0-9+.-]*://[^/@:]*):[^/@]*@");

        /// <summary>Open a tenant: a file or postgres:// directly; a tenant service with a token
        /// file (-TokenFile, else $env:PHSYNC_TOKEN_FILE) and an optional CA file.</summary>
        protected PhsyncCloud OpenCloud(string tenant, string tokenFile, string caFile)
        {
            if (!ServiceTenant.IsMatch(tenant)) return Lib.OpenCloud(tenant);
            if (string.IsNullOrEmpty(tokenFile)) tokenFile = Environment.GetEnvironmentVariable("PHSYNC_TOKEN_FILE");
            if (string.IsNullOrEmpty(caFile)) caFile = Environment.GetEnvironmentVariable("PHSYNC_CA_FILE");
            if (string.IsNullOrEmpty(tokenFile))
                ThrowTerminatingError(UsageError("The tenant " + TenantForDisplay(tenant) + " is a service: pass -TokenFile or set $env:PHSYNC_TOKEN_FILE.", "PhsyncNoTokenFile", TenantForDisplay(tenant)));
            return Lib.OpenRemoteCloud(tenant, FullPath(tokenFile), string.IsNullOrEmpty(caFile) ? null : FullPath(caFile));
        }

        /// <summary>Open the engine of a config file, or stop with a terminating error.</summary>
        protected PhsyncEngine OpenEngine(string config)
        {
            try
            {
                return Lib.OpenEngine(config);
            }
            catch (Exception e) when (!(e is RuntimeException))
            {
                ThrowTerminatingError(ErrorFor(e, config));
                return null;
            }
        }
    }

    /// <summary>Base of the tenant cmdlets: -Tenant, -TokenFile, -CaFile.</summary>
    public abstract class CloudCmdlet : PhsCmdlet, IDisposable
    {
        /// <summary>A tenant file, a postgres:// URL, or the https:// URL of a tenant service. Default: $env:PHSYNC_TENANT.</summary>
        [Parameter]
        public string Tenant { get; set; }

        /// <summary>For a tenant service: the API token file (mode 0600). Default: $env:PHSYNC_TOKEN_FILE.</summary>
        [Parameter]
        public string TokenFile { get; set; }

        /// <summary>For a tenant service: PEM CA certificates to trust. Default: $env:PHSYNC_CA_FILE.</summary>
        [Parameter]
        public string CaFile { get; set; }

        private PhsyncCloud cloud;

        /// <summary>The resolved tenant (may hold a database password: never shown).</summary>
        protected string TenantTarget { get; private set; }

        /// <summary>The tenant as messages and error targets show it.</summary>
        protected string TenantDisplay { get { return TenantForDisplay(TenantTarget); } }

        protected override void BeginProcessing()
        {
            TenantTarget = ResolveTenant(Tenant);
        }

        /// <summary>The tenant, opened on first use and kept for the pipeline (closed in EndProcessing).</summary>
        protected PhsyncCloud Cloud
        {
            get
            {
                if (cloud != null) return cloud;
                try
                {
                    cloud = OpenCloud(TenantTarget, TokenFile, CaFile);
                }
                catch (Exception e) when (!(e is RuntimeException))
                {
                    // An unreachable or unusable tenant is a setup failure: stop the pipeline.
                    ThrowTerminatingError(ErrorFor(e, TenantDisplay));
                }
                return cloud;
            }
        }

        protected override void EndProcessing()
        {
            Dispose();
        }

        /// <summary>Closes the tenant; PowerShell also calls it when the pipeline stops or fails.</summary>
        public void Dispose()
        {
            if (cloud != null)
            {
                cloud.Dispose();
                cloud = null;
            }
        }
    }
}
