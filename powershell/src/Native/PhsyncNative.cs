// Interop layer of the PasswordHashSync module: binds the phsync C ABI (include/phsync.h).
//
// Compiled into the module's netstandard2.0 DLL. No DllImport of the library itself: the library is loaded by
// absolute path from native/<rid>/ inside the module with LoadLibraryEx (Windows) or dlopen
// (Linux, macOS), and each export is bound lazily to a delegate with
// Marshal.GetDelegateForFunctionPointer, so this works on .NET Framework, .NET and Mono, and a
// library that lacks an export fails only when that export is used.
//
// Strings to native code are NUL-terminated UTF-8 byte arrays; strings from native code are
// decoded as UTF-8. Passwords travel only as SecureString -> unmanaged UTF-16 buffer
// (SecureStringToGlobalAllocUnicode), zeroed and freed in finally blocks; they never become a
// managed string.

using System;
using System.Collections.Generic;
using System.IO;
using System.Runtime.ExceptionServices;
using System.Runtime.InteropServices;
using System.Security;
using System.Text;

namespace PasswordHashSync.Native
{
    /// <summary>The native library is not where the module expects it.</summary>
    public class PhsyncLibraryNotFoundException : FileNotFoundException
    {
        private readonly string rid;

        public PhsyncLibraryNotFoundException(string message, string path, string rid)
            : base(message, path)
        {
            this.rid = rid;
        }

        /// <summary>The runtime identifier (win-x64, linux-x64, ...) the path was built from.</summary>
        public string Rid { get { return rid; } }
    }

    /// <summary>The loaded library lacks an export (e.g. a build without the sync engine).</summary>
    public class PhsyncMissingExportException : EntryPointNotFoundException
    {
        private readonly string export;

        public PhsyncMissingExportException(string message, string export)
            : base(message)
        {
            this.export = export;
        }

        public string Export { get { return export; } }
    }

    /// <summary>A native call returned a PHS_E_* status.</summary>
    public class PhsyncException : Exception
    {
        private readonly int status;
        private readonly string statusName;
        private readonly string nativeMessage;
        private readonly string function;

        public PhsyncException(string function, int status, string statusName, string nativeMessage)
            : base(string.Format("{0} failed: {1}: {2}", function, statusName, nativeMessage))
        {
            this.function = function;
            this.status = status;
            this.statusName = statusName;
            this.nativeMessage = nativeMessage;
        }

        public int Status { get { return status; } }
        public string StatusName { get { return statusName; } }
        public string NativeMessage { get { return nativeMessage; } }
        public string Function { get { return function; } }
    }

    /// <summary>Progress of a sync cycle, raised on the calling thread.</summary>
    /// <summary>Progress of a cycle; return false to ask the engine to stop after the replication batch or tenant write in flight.</summary>
    public delegate bool PhsyncProgressHandler(string stage, ulong done, ulong total);

    /// <summary>Status codes of include/phsync.h.</summary>
    public static class PhsyncStatus
    {
        public const int Ok = 0;
        public const int NullArgument = -1;
        public const int InvalidUtf8 = -2;
        public const int BufferTooSmall = -3;
        public const int MalformedDigest = -4;
        public const int PasswordTooLong = -5;
        public const int InvalidArgument = -6;
        public const int Random = -7;
        public const int NotFound = -10;
        public const int PasswordPolicy = -11;
        public const int Conflict = -12;
        public const int Storage = -13;
        public const int InvalidPassword = -14;
        public const int AccessDenied = -15;
        public const int Unreachable = -16;
        public const int Throttled = -17;
        public const int Remote = -18;
        public const int Config = -20;
        public const int Directory = -21;
        public const int Replication = -22;
        public const int Fips = -23;
        public const int State = -24;
        public const int Cancelled = -25;
        public const int Internal = -99;
    }

    internal static class WindowsLoader
    {
        [DllImport("kernel32", CharSet = CharSet.Unicode, SetLastError = true)]
        internal static extern IntPtr LoadLibraryExW(string path, IntPtr file, uint flags);

        [DllImport("kernel32", CharSet = CharSet.Ansi, BestFitMapping = false, SetLastError = true)]
        internal static extern IntPtr GetProcAddress(IntPtr module, string name);

        internal const uint LOAD_WITH_ALTERED_SEARCH_PATH = 0x00000008;
    }

    internal static class LibdlSo2
    {
        [DllImport("libdl.so.2")]
        internal static extern IntPtr dlopen(string path, int mode);

        [DllImport("libdl.so.2")]
        internal static extern IntPtr dlsym(IntPtr handle, string name);

        [DllImport("libdl.so.2")]
        internal static extern IntPtr dlerror();
    }

    internal static class Libdl
    {
        [DllImport("libdl")]
        internal static extern IntPtr dlopen(string path, int mode);

        [DllImport("libdl")]
        internal static extern IntPtr dlsym(IntPtr handle, string name);

        [DllImport("libdl")]
        internal static extern IntPtr dlerror();
    }

    internal static class LibSystem
    {
        [DllImport("libSystem.dylib")]
        internal static extern IntPtr dlopen(string path, int mode);

        [DllImport("libSystem.dylib")]
        internal static extern IntPtr dlsym(IntPtr handle, string name);

        [DllImport("libSystem.dylib")]
        internal static extern IntPtr dlerror();
    }

    internal static class LibdlDylib
    {
        [DllImport("libdl.dylib")]
        internal static extern IntPtr dlopen(string path, int mode);

        [DllImport("libdl.dylib")]
        internal static extern IntPtr dlsym(IntPtr handle, string name);

        [DllImport("libdl.dylib")]
        internal static extern IntPtr dlerror();
    }

    /// <summary>Which dlopen implementation worked; tried in order, the first that binds wins.</summary>
    internal enum DlFlavor { None, LibdlSo2, Libdl, LibSystem, LibdlDylib }

    /// <summary>The phsync native library, loaded from a module folder.</summary>
    public sealed class PhsyncLibrary
    {
        private const int RTLD_NOW = 2;

        private readonly IntPtr handle;
        private readonly string path;
        private readonly string rid;
        private readonly bool windows;
        private readonly DlFlavor dl;
        private readonly Dictionary<string, Delegate> bound = new Dictionary<string, Delegate>();
        private readonly object gate = new object();

        // Delegates for the exports, one per C signature.
        [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
        internal delegate uint AbiVersionFn();
        [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
        internal delegate UIntPtr LastErrorMessageFn([In, Out] byte[] buf, UIntPtr capacity);
        [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
        internal delegate IntPtr StatusNameFn(int status);
        [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
        internal delegate void StringFreeFn(IntPtr s);
        [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
        internal delegate int NtHashUtf16Fn(IntPtr password, UIntPtr len, [In, Out] byte[] outHash);
        [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
        internal delegate int DigestFromNtHashFn([In] byte[] ntHash, [In] byte[] salt, uint iterations, [In, Out] byte[] output, UIntPtr capacity);
        [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
        internal delegate int VerifyUtf16Fn([In] byte[] digest, IntPtr password, UIntPtr len, out byte match);
        [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
        internal delegate int VerifyNtHashFn([In] byte[] digest, [In] byte[] ntHash, out byte match);
        [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
        internal delegate int OpenFn([In] byte[] target, out IntPtr handle);
        [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
        internal delegate int OpenRemoteFn([In] byte[] url, [In] byte[] tokenFile, [In] byte[] caFile, out IntPtr handle);
        [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
        internal delegate void FreeFn(IntPtr handle);
        [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
        internal delegate int SetCloudPasswordFn(IntPtr cloud, [In] byte[] upn, IntPtr password, UIntPtr len, uint flags, out IntPtr json);
        [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
        internal delegate int SignInFn(IntPtr cloud, [In] byte[] upn, IntPtr password, UIntPtr len, out IntPtr json);
        [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
        internal delegate int HandleStringJsonFn(IntPtr handle, [In] byte[] name, out IntPtr json);
        [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
        internal delegate int HandleJsonFn(IntPtr handle, out IntPtr json);
        [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
        internal delegate int HandleFn(IntPtr handle);
        [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
        internal delegate int ProgressFn(IntPtr context, IntPtr stage, ulong done, ulong total);
        [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
        internal delegate int SyncCycleFn(IntPtr engine, uint flags, ProgressFn progress, IntPtr context, out IntPtr json);
        [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
        internal delegate int StringJsonFn([In] byte[] argument, out IntPtr json);
        [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
        internal delegate int AuditFn([In] byte[] configPath, [In] byte[] leakedHashesPath, [In] byte[] weakPasswordsPath, byte allAccounts, out IntPtr json);
        [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
        internal delegate int EventsFn([In] byte[] configPath, [In] ushort[] ids, UIntPtr idsLen, long afterUnixMs, UIntPtr newest, out IntPtr json);

        private PhsyncLibrary(IntPtr handle, string path, string rid, bool windows, DlFlavor dl)
        {
            this.handle = handle;
            this.path = path;
            this.rid = rid;
            this.windows = windows;
            this.dl = dl;
        }

        /// <summary>Absolute path the library was loaded from.</summary>
        public string Path { get { return path; } }

        /// <summary>Runtime identifier of the folder it was loaded from.</summary>
        public string Rid { get { return rid; } }

        /// <summary>True on Windows (Desktop or Core).</summary>
        public static bool IsWindows
        {
            get
            {
                PlatformID p = Environment.OSVersion.Platform;
                return p == PlatformID.Win32NT || p == PlatformID.Win32Windows || p == PlatformID.Win32S || p == PlatformID.WinCE;
            }
        }

        /// <summary>True on macOS (Mono may report it as Unix).</summary>
        public static bool IsMacOS
        {
            get
            {
                if (IsWindows) return false;
                if (Environment.OSVersion.Platform == PlatformID.MacOSX) return true;
                return File.Exists("/System/Library/CoreServices/SystemVersion.plist");
            }
        }

        /// <summary>The process architecture as a RID suffix: x64, arm64, x86 or arm.</summary>
        public static string ProcessArchitecture()
        {
            // RuntimeInformation exists on .NET, Mono and .NET Framework 4.7.1+, but Add-Type on
            // Windows PowerShell does not reference its assembly: reach it by reflection.
            string[] homes = new string[] {
                "System.Runtime.InteropServices.RuntimeInformation, System.Runtime.InteropServices.RuntimeInformation",
                "System.Runtime.InteropServices.RuntimeInformation, System.Runtime.InteropServices",
                "System.Runtime.InteropServices.RuntimeInformation, mscorlib",
            };
            foreach (string home in homes)
            {
                Type t = null;
                try { t = Type.GetType(home, false); } catch (Exception) { t = null; }
                if (t == null) continue;
                System.Reflection.PropertyInfo prop = t.GetProperty("ProcessArchitecture");
                if (prop == null) continue;
                object value = prop.GetValue(null, null);
                if (value == null) continue;
                switch (value.ToString())
                {
                    case "X64": return "x64";
                    case "Arm64": return "arm64";
                    case "X86": return "x86";
                    case "Arm": return "arm";
                }
            }
            if (!IsWindows && !IsMacOS)
            {
                string elf = ElfArchitecture("/proc/self/exe");
                if (elf != null) return elf;
            }
            if (IsWindows)
            {
                string a = Environment.GetEnvironmentVariable("PROCESSOR_ARCHITECTURE");
                if (string.Equals(a, "ARM64", StringComparison.OrdinalIgnoreCase)) return "arm64";
                if (string.Equals(a, "AMD64", StringComparison.OrdinalIgnoreCase)) return "x64";
            }
            return IntPtr.Size == 8 ? "x64" : "x86";
        }

        /// <summary>The architecture of an ELF file from its e_machine field (x64, arm64, x86, arm), or null.</summary>
        public static string ElfArchitecture(string file)
        {
            try
            {
                byte[] header = new byte[20];
                using (FileStream f = File.OpenRead(file))
                {
                    if (f.Read(header, 0, header.Length) != header.Length) return null;
                }
                if (header[0] != 0x7f || header[1] != (byte)'E' || header[2] != (byte)'L' || header[3] != (byte)'F') return null;
                int machine = header[5] == 2 ? (header[18] << 8) | header[19] : header[18] | (header[19] << 8);
                switch (machine)
                {
                    case 0x3E: return "x64";
                    case 0xB7: return "arm64";
                    case 0x03: return "x86";
                    case 0x28: return "arm";
                }
                return null;
            }
            catch (IOException) { return null; }
            catch (UnauthorizedAccessException) { return null; }
        }

        /// <summary>The runtime identifier of this process: win-x64, linux-arm64, osx-arm64, ...</summary>
        public static string CurrentRid()
        {
            string os = IsWindows ? "win" : (IsMacOS ? "osx" : "linux");
            return os + "-" + ProcessArchitecture();
        }

        /// <summary>File name of the library for a RID.</summary>
        public static string LibraryFileName(string rid)
        {
            if (rid.StartsWith("win-", StringComparison.Ordinal)) return "phsync.dll";
            if (rid.StartsWith("osx-", StringComparison.Ordinal)) return "libphsync.dylib";
            return "libphsync.so";
        }

        /// <summary>The path the library is expected at: moduleRoot/native/rid/file.</summary>
        public static string ExpectedPath(string moduleRoot, string rid)
        {
            string root = System.IO.Path.GetFullPath(moduleRoot);
            return System.IO.Path.Combine(System.IO.Path.Combine(System.IO.Path.Combine(root, "native"), rid), LibraryFileName(rid));
        }

        /// <summary>Load the library for this process's RID from a module folder.</summary>
        public static PhsyncLibrary Load(string moduleRoot)
        {
            return Load(moduleRoot, CurrentRid());
        }

        /// <summary>Load the library for an explicit RID from a module folder.</summary>
        public static PhsyncLibrary Load(string moduleRoot, string rid)
        {
            if (moduleRoot == null) throw new ArgumentNullException("moduleRoot");
            if (rid == null) throw new ArgumentNullException("rid");
            string file = ExpectedPath(moduleRoot, rid);
            if (!File.Exists(file))
            {
                throw new PhsyncLibraryNotFoundException(string.Format(
                    "The phsync native library for this platform ({0}) is missing: expected {1}. " +
                    "Build the module with scripts/package-powershell on a {0} machine, or copy the library there.",
                    rid, file), file, rid);
            }
            if (IsWindows)
            {
                IntPtr h = WindowsLoader.LoadLibraryExW(file, IntPtr.Zero, WindowsLoader.LOAD_WITH_ALTERED_SEARCH_PATH);
                if (h == IntPtr.Zero)
                {
                    int err = Marshal.GetLastWin32Error();
                    throw new DllNotFoundException(string.Format(
                        "LoadLibraryEx failed for {0} ({1}): Win32 error {2}", file, rid, err));
                }
                return new PhsyncLibrary(h, file, rid, true, DlFlavor.None);
            }
            DlFlavor[] order = IsMacOS
                ? new DlFlavor[] { DlFlavor.LibSystem, DlFlavor.LibdlDylib }
                : new DlFlavor[] { DlFlavor.LibdlSo2, DlFlavor.Libdl };
            Exception lastBindError = null;
            foreach (DlFlavor flavor in order)
            {
                IntPtr h;
                try
                {
                    h = DlOpen(flavor, file);
                }
                catch (DllNotFoundException e) { lastBindError = e; continue; }
                catch (EntryPointNotFoundException e) { lastBindError = e; continue; }
                if (h == IntPtr.Zero)
                {
                    throw new DllNotFoundException(string.Format(
                        "dlopen failed for {0} ({1}): {2}", file, rid, DlError(flavor)));
                }
                return new PhsyncLibrary(h, file, rid, false, flavor);
            }
            throw new DllNotFoundException(string.Format(
                "No dlopen found to load {0} ({1}): {2}", file, rid,
                lastBindError == null ? "no candidate" : lastBindError.Message));
        }

        private static IntPtr DlOpen(DlFlavor flavor, string file)
        {
            switch (flavor)
            {
                case DlFlavor.LibdlSo2: return LibdlSo2.dlopen(file, RTLD_NOW);
                case DlFlavor.Libdl: return Libdl.dlopen(file, RTLD_NOW);
                case DlFlavor.LibSystem: return LibSystem.dlopen(file, RTLD_NOW);
                case DlFlavor.LibdlDylib: return LibdlDylib.dlopen(file, RTLD_NOW);
            }
            return IntPtr.Zero;
        }

        private static IntPtr DlSym(DlFlavor flavor, IntPtr handle, string name)
        {
            switch (flavor)
            {
                case DlFlavor.LibdlSo2: return LibdlSo2.dlsym(handle, name);
                case DlFlavor.Libdl: return Libdl.dlsym(handle, name);
                case DlFlavor.LibSystem: return LibSystem.dlsym(handle, name);
                case DlFlavor.LibdlDylib: return LibdlDylib.dlsym(handle, name);
            }
            return IntPtr.Zero;
        }

        private static string DlError(DlFlavor flavor)
        {
            IntPtr p = IntPtr.Zero;
            switch (flavor)
            {
                case DlFlavor.LibdlSo2: p = LibdlSo2.dlerror(); break;
                case DlFlavor.Libdl: p = Libdl.dlerror(); break;
                case DlFlavor.LibSystem: p = LibSystem.dlerror(); break;
                case DlFlavor.LibdlDylib: p = LibdlDylib.dlerror(); break;
            }
            return p == IntPtr.Zero ? "unknown error" : Utf8At(p);
        }

        private IntPtr Symbol(string name)
        {
            if (windows) return WindowsLoader.GetProcAddress(handle, name);
            return DlSym(dl, handle, name);
        }

        /// <summary>Whether the library exports a symbol (e.g. phs_engine_open).</summary>
        public bool HasExport(string name)
        {
            return Symbol(name) != IntPtr.Zero;
        }

        private T Bind<T>(string name) where T : class
        {
            lock (gate)
            {
                Delegate d;
                if (!bound.TryGetValue(name, out d))
                {
                    IntPtr p = Symbol(name);
                    if (p == IntPtr.Zero)
                    {
                        throw new PhsyncMissingExportException(string.Format(
                            "The phsync library {0} does not export {1}; it was built without this function " +
                            "(rebuild it with scripts/package-powershell from a newer phsync).", path, name), name);
                    }
                    d = Marshal.GetDelegateForFunctionPointer(p, typeof(T));
                    bound[name] = d;
                }
                return (T)(object)d;
            }
        }

        // ---- strings --------------------------------------------------------------------

        /// <summary>Decode the NUL-terminated UTF-8 string at p (not freed).</summary>
        internal static string Utf8At(IntPtr p)
        {
            if (p == IntPtr.Zero) return null;
            int n = 0;
            while (Marshal.ReadByte(p, n) != 0) n++;
            byte[] bytes = new byte[n];
            Marshal.Copy(p, bytes, 0, n);
            return Encoding.UTF8.GetString(bytes);
        }

        /// <summary>A NUL-terminated UTF-8 byte array, or null for null.</summary>
        public static byte[] Utf8Z(string s)
        {
            if (s == null) return null;
            byte[] body = Encoding.UTF8.GetBytes(s);
            byte[] z = new byte[body.Length + 1];
            Buffer.BlockCopy(body, 0, z, 0, body.Length);
            return z;
        }

        /// <summary>Take ownership of a phsync-returned string: decode it, then phs_string_free it.</summary>
        private string TakeString(IntPtr p)
        {
            if (p == IntPtr.Zero) return null;
            try
            {
                return Utf8At(p);
            }
            finally
            {
                Bind<StringFreeFn>("phs_string_free")(p);
            }
        }

        /// <summary>This thread's message for the last native failure.</summary>
        public string LastErrorMessage()
        {
            LastErrorMessageFn f = Bind<LastErrorMessageFn>("phs_last_error_message");
            byte[] buf = new byte[256];
            ulong needed = f(buf, new UIntPtr((ulong)buf.Length)).ToUInt64();
            if (needed > (ulong)buf.Length)
            {
                buf = new byte[needed];
                f(buf, new UIntPtr((ulong)buf.Length));
            }
            int n = Array.IndexOf(buf, (byte)0);
            if (n < 0) n = buf.Length;
            return Encoding.UTF8.GetString(buf, 0, n);
        }

        /// <summary>The PHS_E_* name of a status code.</summary>
        public string StatusName(int status)
        {
            return Utf8At(Bind<StatusNameFn>("phs_status_name")(status));
        }

        /// <summary>Throw PhsyncException for a non-zero status (message read on this thread).</summary>
        public void Check(string function, int status)
        {
            if (status == PhsyncStatus.Ok) return;
            string message = LastErrorMessage();
            throw new PhsyncException(function, status, StatusName(status), message);
        }

        // ---- hashing --------------------------------------------------------------------

        /// <summary>PHS_ABI_VERSION of the library.</summary>
        public uint AbiVersion()
        {
            return Bind<AbiVersionFn>("phs_abi_version")();
        }

        private static void RequirePassword(SecureString password)
        {
            if (password == null) throw new ArgumentNullException("password");
        }

        /// <summary>The NT hash (16 bytes) of a SecureString, via its UTF-16 buffer.</summary>
        public byte[] NtHashBytes(SecureString password)
        {
            RequirePassword(password);
            NtHashUtf16Fn f = Bind<NtHashUtf16Fn>("phs_nt_hash_utf16");
            byte[] hash = new byte[16];
            IntPtr pw = IntPtr.Zero;
            try
            {
                pw = Marshal.SecureStringToGlobalAllocUnicode(password);
                Check("phs_nt_hash_utf16", f(pw, new UIntPtr((uint)password.Length), hash));
            }
            finally
            {
                if (pw != IntPtr.Zero) Marshal.ZeroFreeGlobalAllocUnicode(pw);
            }
            return hash;
        }

        /// <summary>The upper-case hex NT hash of a SecureString.</summary>
        public string NtHash(SecureString password)
        {
            byte[] hash = NtHashBytes(password);
            try
            {
                return ToHex(hash, true);
            }
            finally
            {
                Array.Clear(hash, 0, hash.Length);
            }
        }

        /// <summary>PHS digest of a SecureString. salt: 10 bytes or null (random); iterations 0 = 1000.</summary>
        public string Digest(SecureString password, byte[] salt, uint iterations)
        {
            byte[] hash = NtHashBytes(password);
            try
            {
                return DigestFromNtHash(hash, salt, iterations);
            }
            finally
            {
                Array.Clear(hash, 0, hash.Length);
            }
        }

        /// <summary>PHS digest of a 16-byte NT hash.</summary>
        public string DigestFromNtHash(byte[] ntHash, byte[] salt, uint iterations)
        {
            if (ntHash != null && ntHash.Length != 16)
                throw new ArgumentException("An NT hash is 16 bytes (32 hex digits), got " + ntHash.Length + " bytes.", "ntHash");
            if (salt != null && salt.Length != 10)
                throw new ArgumentException("A salt is 10 bytes (20 hex digits), got " + salt.Length + " bytes.", "salt");
            DigestFromNtHashFn f = Bind<DigestFromNtHashFn>("phs_digest_from_nt_hash");
            byte[] output = new byte[128];
            Check("phs_digest_from_nt_hash", f(ntHash, salt, iterations, output, new UIntPtr((uint)output.Length)));
            int n = Array.IndexOf(output, (byte)0);
            return Encoding.UTF8.GetString(output, 0, n < 0 ? output.Length : n);
        }

        /// <summary>PHS digest of an NT hash given as 32 hex digits; salt as 20 hex digits or null.</summary>
        public string DigestFromNtHashHex(string ntHashHex, string saltHex, uint iterations)
        {
            byte[] hash = FromHex(ntHashHex, 16, "ntHash");
            try
            {
                return DigestFromNtHash(hash, saltHex == null ? null : FromHex(saltHex, 10, "salt"), iterations);
            }
            finally
            {
                Array.Clear(hash, 0, hash.Length);
            }
        }

        /// <summary>Whether a SecureString password matches a digest string.</summary>
        public bool Verify(string digest, SecureString password)
        {
            RequirePassword(password);
            VerifyUtf16Fn f = Bind<VerifyUtf16Fn>("phs_verify_utf16");
            IntPtr pw = IntPtr.Zero;
            byte match = 0;
            try
            {
                pw = Marshal.SecureStringToGlobalAllocUnicode(password);
                Check("phs_verify_utf16", f(Utf8Z(digest), pw, new UIntPtr((uint)password.Length), out match));
            }
            finally
            {
                if (pw != IntPtr.Zero) Marshal.ZeroFreeGlobalAllocUnicode(pw);
            }
            return match != 0;
        }

        /// <summary>Whether an NT hash (32 hex digits) matches a digest string.</summary>
        public bool VerifyNtHash(string digest, string ntHashHex)
        {
            byte[] hash = FromHex(ntHashHex, 16, "ntHash");
            try
            {
                byte match = 0;
                Check("phs_verify_nt_hash", Bind<VerifyNtHashFn>("phs_verify_nt_hash")(Utf8Z(digest), hash, out match));
                return match != 0;
            }
            finally
            {
                Array.Clear(hash, 0, hash.Length);
            }
        }

        // ---- tenant and engine ------------------------------------------------------------

        /// <summary>Open a tenant (a tenant file path).</summary>
        public PhsyncCloud OpenCloud(string target)
        {
            IntPtr h;
            Check("phs_cloud_open", Bind<OpenFn>("phs_cloud_open")(Utf8Z(target), out h));
            return new PhsyncCloud(this, h);
        }

        /// <summary>Open the tenant behind phsync cloud serve (https://host:port) with an API
        /// token file and, unless null, a PEM CA file to trust.</summary>
        public PhsyncCloud OpenRemoteCloud(string url, string tokenFile, string caFile)
        {
            IntPtr h;
            Check("phs_cloud_open_remote", Bind<OpenRemoteFn>("phs_cloud_open_remote")(Utf8Z(url), Utf8Z(tokenFile), Utf8Z(caFile), out h));
            return new PhsyncCloud(this, h);
        }

        /// <summary>Open the sync engine with a config file.</summary>
        public PhsyncEngine OpenEngine(string configPath)
        {
            IntPtr h;
            Check("phs_engine_open", Bind<OpenFn>("phs_engine_open")(Utf8Z(configPath), out h));
            return new PhsyncEngine(this, h);
        }

        internal void Free(string export, IntPtr h)
        {
            if (h != IntPtr.Zero) Bind<FreeFn>(export)(h);
        }

        internal string SetCloudPassword(IntPtr cloud, string upn, SecureString password, bool forceChange)
        {
            RequirePassword(password);
            SetCloudPasswordFn f = Bind<SetCloudPasswordFn>("phs_set_cloud_password");
            IntPtr pw = IntPtr.Zero;
            IntPtr json = IntPtr.Zero;
            try
            {
                pw = Marshal.SecureStringToGlobalAllocUnicode(password);
                Check("phs_set_cloud_password", f(cloud, Utf8Z(upn), pw, new UIntPtr((uint)password.Length), forceChange ? 1u : 0u, out json));
            }
            finally
            {
                if (pw != IntPtr.Zero) Marshal.ZeroFreeGlobalAllocUnicode(pw);
            }
            return TakeString(json);
        }

        internal string SignIn(IntPtr cloud, string upn, SecureString password)
        {
            RequirePassword(password);
            SignInFn f = Bind<SignInFn>("phs_cloud_sign_in");
            IntPtr pw = IntPtr.Zero;
            IntPtr json = IntPtr.Zero;
            try
            {
                pw = Marshal.SecureStringToGlobalAllocUnicode(password);
                Check("phs_cloud_sign_in", f(cloud, Utf8Z(upn), pw, new UIntPtr((uint)password.Length), out json));
            }
            finally
            {
                if (pw != IntPtr.Zero) Marshal.ZeroFreeGlobalAllocUnicode(pw);
            }
            return TakeString(json);
        }

        internal string HandleStringJson(string export, IntPtr h, string argument)
        {
            IntPtr json;
            Check(export, Bind<HandleStringJsonFn>(export)(h, Utf8Z(argument), out json));
            return TakeString(json);
        }

        internal string HandleJson(string export, IntPtr h)
        {
            IntPtr json;
            Check(export, Bind<HandleJsonFn>(export)(h, out json));
            return TakeString(json);
        }

        internal void HandleCall(string export, IntPtr h)
        {
            Check(export, Bind<HandleFn>(export)(h));
        }

        internal string SyncCycle(IntPtr engine, bool full, PhsyncProgressHandler progress)
        {
            SyncCycleFn f = Bind<SyncCycleFn>("phs_sync_cycle");
            ExceptionDispatchInfo handlerError = null;
            ProgressFn trampoline = null;
            if (progress != null)
            {
                // Exceptions must not unwind through native frames: keep the first, rethrow after.
                trampoline = delegate(IntPtr context, IntPtr stage, ulong done, ulong total)
                {
                    if (handlerError != null) return 1;
                    try
                    {
                        return progress(Utf8At(stage), done, total) ? 0 : 1;
                    }
                    catch (Exception e)
                    {
                        // The handler failed: keep the error and stop the cycle.
                        handlerError = ExceptionDispatchInfo.Capture(e);
                        return 1;
                    }
                };
            }
            IntPtr json;
            int status = f(engine, full ? 1u : 0u, trampoline, IntPtr.Zero, out json);
            GC.KeepAlive(trampoline);
            if (handlerError != null) handlerError.Throw();
            Check("phs_sync_cycle", status);
            return TakeString(json);
        }

        /// <summary>The connection checks of an engine config (phs_check_connection), as JSON.</summary>
        public string CheckConnection(string configPath)
        {
            IntPtr json;
            Check("phs_check_connection", Bind<StringJsonFn>("phs_check_connection")(Utf8Z(configPath), out json));
            return TakeString(json);
        }

        /// <summary>The password-quality audit of an engine config (phs_audit), as JSON. The
        /// list paths may be null (not checked).</summary>
        public string Audit(string configPath, string leakedHashesPath, string weakPasswordsPath, bool allAccounts)
        {
            IntPtr json;
            Check("phs_audit", Bind<AuditFn>("phs_audit")(Utf8Z(configPath), Utf8Z(leakedHashesPath), Utf8Z(weakPasswordsPath), (byte)(allAccounts ? 1 : 0), out json));
            return TakeString(json);
        }

        /// <summary>Events of an engine's event log (phs_events), oldest first, as JSON.</summary>
        public string Events(string configPath, ushort[] ids, long afterUnixMs, ulong newest)
        {
            IntPtr json;
            ushort[] list = ids == null || ids.Length == 0 ? null : ids;
            int n = list == null ? 0 : list.Length;
            Check("phs_events", Bind<EventsFn>("phs_events")(Utf8Z(configPath), list, new UIntPtr((uint)n), afterUnixMs, new UIntPtr(newest), out json));
            return TakeString(json);
        }

        // ---- hex ----------------------------------------------------------------------------

        public static string ToHex(byte[] bytes, bool upper)
        {
            string digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
            char[] c = new char[bytes.Length * 2];
            for (int i = 0; i < bytes.Length; i++)
            {
                c[2 * i] = digits[bytes[i] >> 4];
                c[2 * i + 1] = digits[bytes[i] & 15];
            }
            return new string(c);
        }

        /// <summary>Parse exactly `length` bytes of hex (either case).</summary>
        public static byte[] FromHex(string hex, int length, string name)
        {
            if (hex == null) throw new ArgumentNullException(name);
            if (hex.Length != length * 2)
                throw new ArgumentException(string.Format("{0} must be {1} hex digits, got {2} characters.", name, length * 2, hex.Length), name);
            byte[] b = new byte[length];
            for (int i = 0; i < length; i++)
            {
                int hi = HexValue(hex[2 * i]);
                int lo = HexValue(hex[2 * i + 1]);
                if (hi < 0 || lo < 0)
                    throw new ArgumentException(string.Format("{0} must be hex digits only (0-9, a-f).", name), name);
                b[i] = (byte)((hi << 4) | lo);
            }
            return b;
        }

        private static int HexValue(char c)
        {
            if (c >= '0' && c <= '9') return c - '0';
            if (c >= 'a' && c <= 'f') return c - 'a' + 10;
            if (c >= 'A' && c <= 'F') return c - 'A' + 10;
            return -1;
        }
    }

    /// <summary>An open tenant (phs_cloud_open); Dispose frees it.</summary>
    public sealed class PhsyncCloud : IDisposable
    {
        private readonly PhsyncLibrary lib;
        private IntPtr handle;

        internal PhsyncCloud(PhsyncLibrary lib, IntPtr handle)
        {
            this.lib = lib;
            this.handle = handle;
        }

        private IntPtr Handle
        {
            get
            {
                if (handle == IntPtr.Zero) throw new ObjectDisposedException("PhsyncCloud");
                return handle;
            }
        }

        /// <summary>Administrator reset; returns the JSON result.</summary>
        public string SetPassword(string upn, SecureString password, bool forceChangeAtNextSignIn)
        {
            return lib.SetCloudPassword(Handle, upn, password, forceChangeAtNextSignIn);
        }

        /// <summary>Sign in; a refusal is a result too (read "result").</summary>
        public string SignIn(string upn, SecureString password)
        {
            return lib.SignIn(Handle, upn, password);
        }

        /// <summary>One user as JSON.</summary>
        public string User(string upn)
        {
            return lib.HandleStringJson("phs_cloud_user", Handle, upn);
        }

        /// <summary>Every user marked at risk: {"risks":[...]}.</summary>
        public string Risks()
        {
            return lib.HandleJson("phs_cloud_risks", Handle);
        }

        /// <summary>End every sign-in session of a user; JSON with the number ended.</summary>
        public string RevokeSessions(string upn)
        {
            return lib.HandleStringJson("phs_cloud_revoke_sessions", Handle, upn);
        }

        public void Dispose()
        {
            IntPtr h = handle;
            handle = IntPtr.Zero;
            lib.Free("phs_cloud_free", h);
        }
    }

    /// <summary>An open sync engine (phs_engine_open); Dispose frees it. One call at a time,
    /// except Stop, which any thread may call while Run (or SyncCycle) runs.</summary>
    public sealed class PhsyncEngine : IDisposable
    {
        private readonly PhsyncLibrary lib;
        private IntPtr handle;
        // Stop (any thread) and Dispose never overlap: the handle is not freed under a stop.
        private readonly object gate = new object();

        internal PhsyncEngine(PhsyncLibrary lib, IntPtr handle)
        {
            this.lib = lib;
            this.handle = handle;
        }

        private IntPtr Handle
        {
            get
            {
                if (handle == IntPtr.Zero) throw new ObjectDisposedException("PhsyncEngine");
                return handle;
            }
        }

        /// <summary>One sync cycle (full or incremental); progress may be null.</summary>
        public string SyncCycle(bool full, PhsyncProgressHandler progress)
        {
            return lib.SyncCycle(Handle, full, progress);
        }

        /// <summary>Sync one user now (sAMAccountName, UPN, DN or GUID).</summary>
        public string SyncUser(string user)
        {
            return lib.HandleStringJson("phs_sync_user", Handle, user);
        }

        /// <summary>A user's sync diagnostics and history.</summary>
        public string UserStatus(string user)
        {
            return lib.HandleStringJson("phs_user_status", Handle, user);
        }

        /// <summary>Every user's diagnostics, the last cycle and the notification state.</summary>
        public string SyncStatus()
        {
            return lib.HandleJson("phs_sync_status", Handle);
        }

        /// <summary>Run until Stop (phs_engine_run): the first cycle, then change-driven sync
        /// between periodic cycles. Blocks the calling thread.</summary>
        public void Run()
        {
            lib.HandleCall("phs_engine_run", Handle);
        }

        /// <summary>Make a running Run return after the user in flight (phs_engine_stop); before
        /// Run, makes the next Run return at once. Any thread; a no-op once disposed.</summary>
        public void Stop()
        {
            lock (gate)
            {
                if (handle != IntPtr.Zero) lib.HandleCall("phs_engine_stop", handle);
            }
        }

        public void Dispose()
        {
            IntPtr h;
            lock (gate)
            {
                h = handle;
                handle = IntPtr.Zero;
            }
            lib.Free("phs_engine_free", h);
        }
    }
}
