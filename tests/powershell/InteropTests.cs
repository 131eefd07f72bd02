// Mono test of the PowerShell module's interop layer (powershell/PasswordHashSync/PhsyncNative.cs,
// compiled together with this file, C# 5): every native entry point the cmdlets use, through the
// same loading code, against the library in a packaged module folder.
//
// Usage: mono InteropTests.exe MODULE_DIR PHSYNC_CLI WORK_DIR FAKE_ENGINE_DIR
//   MODULE_DIR       the packaged module (with native/<rid>/...)
//   PHSYNC_CLI       the phsync binary (creates the tenant's users)
//   WORK_DIR         an empty scratch folder
//   FAKE_ENGINE_DIR  a module folder whose native/<rid>/ library is tests/powershell/fake_engine.c,
//                    a test double with the agreed engine signatures (marshaling tests)
// Engine tests run when the library exports phs_engine_open; they need PHSYNC_PS_ENGINE_CONFIG
// (a config file for the AD lab) and PHSYNC_PS_ENGINE_USER (a user in scope of it).
// Prints `N passed, N failed`; exits 1 on any failure.

using System;
using System.Diagnostics;
using System.IO;
using System.Security;
using System.Text.RegularExpressions;
using PasswordHashSync;

public static class InteropTests
{
    static int passed;
    static int failed;

    delegate void Body();

    static void Test(string name, Body body)
    {
        try
        {
            body();
            passed++;
            Console.WriteLine("ok   " + name);
        }
        catch (Exception e)
        {
            failed++;
            Console.WriteLine("FAIL " + name + ": " + e.GetType().Name + ": " + e.Message);
        }
    }

    static void Equal(object expected, object actual, string what)
    {
        if (!object.Equals(expected, actual))
            throw new Exception(string.Format("{0}: expected <{1}>, got <{2}>", what, expected, actual));
    }

    static void True(bool condition, string what)
    {
        if (!condition) throw new Exception(what);
    }

    static void Contains(string haystack, string needle, string what)
    {
        if (haystack == null || haystack.IndexOf(needle, StringComparison.Ordinal) < 0)
            throw new Exception(string.Format("{0}: <{1}> does not contain <{2}>", what, haystack, needle));
    }

    /// <summary>Runs body, which must throw PhsyncException with that status name.</summary>
    static PhsyncException Status(string statusName, Body body)
    {
        try
        {
            body();
        }
        catch (PhsyncException e)
        {
            Equal(statusName, e.StatusName, "status name (" + e.Message + ")");
            True(e.NativeMessage.Length > 0, "native message is empty");
            return e;
        }
        throw new Exception("expected " + statusName + ", nothing was thrown");
    }

    static T Throws<T>(Body body) where T : Exception
    {
        try
        {
            body();
        }
        catch (T e)
        {
            return e;
        }
        throw new Exception("expected " + typeof(T).Name + ", nothing was thrown");
    }

    static SecureString Secure(string s)
    {
        SecureString ss = new SecureString();
        foreach (char c in s) ss.AppendChar(c);
        ss.MakeReadOnly();
        return ss;
    }

    /// <summary>A top-level string field of a JSON object (tests only; values without escapes).</summary>
    static string Field(string json, string key)
    {
        Match m = Regex.Match(json, "\"" + Regex.Escape(key) + "\"\\s*:\\s*(\"([^\"\\\\]*)\"|true|false|null|-?[0-9]+)");
        if (!m.Success) throw new Exception("no field " + key + " in " + json);
        return m.Groups[2].Success ? m.Groups[2].Value : m.Groups[1].Value;
    }

    static void Cli(string cli, params string[] args)
    {
        ProcessStartInfo psi = new ProcessStartInfo(cli);
        string quoted = "";
        foreach (string a in args) quoted += (quoted.Length > 0 ? " " : "") + "\"" + a + "\"";
        psi.Arguments = quoted;
        psi.UseShellExecute = false;
        psi.RedirectStandardError = true;
        using (Process p = Process.Start(psi))
        {
            string err = p.StandardError.ReadToEnd();
            p.WaitForExit();
            if (p.ExitCode != 0) throw new Exception("phsync " + quoted + " exited " + p.ExitCode + ": " + err);
        }
    }

    public static int Main(string[] args)
    {
        if (args.Length != 4)
        {
            Console.Error.WriteLine("usage: InteropTests.exe MODULE_DIR PHSYNC_CLI WORK_DIR FAKE_ENGINE_DIR");
            return 2;
        }
        string fakeDir = Path.GetFullPath(args[3]);
        string moduleDir = Path.GetFullPath(args[0]);
        string cli = Path.GetFullPath(args[1]);
        string work = Path.GetFullPath(args[2]);
        PhsyncLibrary lib = null;

        // ---- loading -------------------------------------------------------------------------
        Test("loads the library from native/<rid>/ of the module folder", delegate
        {
            lib = PhsyncLibrary.Load(moduleDir);
            string rid = PhsyncLibrary.CurrentRid();
            True(rid == "linux-x64" || rid == "linux-arm64" || rid == "osx-x64" || rid == "osx-arm64" || rid == "win-x64" || rid == "win-arm64", "unexpected RID " + rid);
            Equal(rid, lib.Rid, "rid");
            Equal(Path.Combine(Path.Combine(Path.Combine(moduleDir, "native"), rid), PhsyncLibrary.LibraryFileName(rid)), lib.Path, "path");
            Equal(1u, lib.AbiVersion(), "phs_abi_version");
        });
        if (lib == null)
        {
            Console.WriteLine(string.Format("{0} passed, {1} failed", passed, failed + 1));
            return 1;
        }

        Test("the ELF fallback of the architecture agrees with the runtime's", delegate
        {
            string rid = PhsyncLibrary.CurrentRid();
            if (rid.StartsWith("linux-", StringComparison.Ordinal))
                Equal(rid.Substring("linux-".Length), PhsyncLibrary.ElfArchitecture("/proc/self/exe"), "e_machine of this process");
            Equal(null, PhsyncLibrary.ElfArchitecture(Path.Combine(moduleDir, "PhsyncNative.cs")), "not an ELF file");
        });

        Test("a missing library is an error naming the expected path and RID", delegate
        {
            string empty = Path.Combine(work, "empty-module");
            Directory.CreateDirectory(empty);
            PhsyncLibraryNotFoundException e = Throws<PhsyncLibraryNotFoundException>(delegate { PhsyncLibrary.Load(empty, "linux-x64"); });
            string expected = Path.Combine(Path.Combine(Path.Combine(empty, "native"), "linux-x64"), "libphsync.so");
            Equal(expected, e.FileName, "FileName");
            Equal("linux-x64", e.Rid, "Rid");
            Contains(e.Message, expected, "message");
            Contains(e.Message, "linux-x64", "message");
            e = Throws<PhsyncLibraryNotFoundException>(delegate { PhsyncLibrary.Load(empty, "win-x64"); });
            Contains(e.Message, Path.Combine(Path.Combine(Path.Combine(empty, "native"), "win-x64"), "phsync.dll"), "message");
            e = Throws<PhsyncLibraryNotFoundException>(delegate { PhsyncLibrary.Load(empty, "osx-arm64"); });
            Contains(e.Message, "libphsync.dylib", "message");
        });

        Test("a file that is not a library is a load error naming it", delegate
        {
            string bogus = Path.Combine(work, "bogus-module");
            string rid = PhsyncLibrary.CurrentRid();
            string dir = Path.Combine(Path.Combine(bogus, "native"), rid);
            Directory.CreateDirectory(dir);
            File.WriteAllText(Path.Combine(dir, PhsyncLibrary.LibraryFileName(rid)), "not a shared object");
            DllNotFoundException e = Throws<DllNotFoundException>(delegate { PhsyncLibrary.Load(bogus); });
            Contains(e.Message, Path.Combine(dir, PhsyncLibrary.LibraryFileName(rid)), "message");
        });

        Test("status names and messages come from the library", delegate
        {
            Equal("PHS_OK", lib.StatusName(0), "0");
            Equal("PHS_E_NOT_FOUND", lib.StatusName(-10), "-10");
            Equal("PHS_E_PASSWORD_POLICY", lib.StatusName(-11), "-11");
            lib.Check("nothing", 0);
        });

        // ---- hashing -------------------------------------------------------------------------
        Test("NT hash of Pa$$w0rd (SecureString -> UTF-16)", delegate
        {
            Equal("92937945B518814341DE3F726500D4FF", lib.NtHash(Secure("Pa$$w0rd")), "NT hash");
        });

        Test("NT hash of a non-ASCII password", delegate
        {
            Equal("0D90FB43740BE81B67E6A79A113817C4", lib.NtHash(Secure("\u017elu\u0165ou\u010dk\u00fd k\u016f\u0148")), "NT hash");
        });

        Test("NT hash of the empty password", delegate
        {
            Equal("31D6CFE0D16AE931B73C59D7E0C089C0", lib.NtHash(new SecureString()), "NT hash");
        });

        string vector = "v1;PPH1_MD4,181a3024085fcee2f70e,1000,b39525c3bc72a1136fcf7c8a338e0c14313d0450d1a4c98ef0a6ddada3bc5b0a;";
        byte[] salt = PhsyncLibrary.FromHex("181a3024085fcee2f70e", 10, "salt");

        Test("digest vector from a password", delegate
        {
            Equal(vector, lib.Digest(Secure("Pa$$w0rd"), salt, 1000), "digest");
            Equal(vector, lib.Digest(Secure("Pa$$w0rd"), salt, 0), "digest with iterations 0");
        });

        Test("digest vector from an NT hash in hex (either case)", delegate
        {
            Equal(vector, lib.DigestFromNtHashHex("92937945B518814341DE3F726500D4FF", "181a3024085fcee2f70e", 1000), "upper");
            Equal(vector, lib.DigestFromNtHashHex("92937945b518814341de3f726500d4ff", "181A3024085FCEE2F70E", 1000), "lower");
        });

        Test("a random salt gives a fresh, verifiable digest", delegate
        {
            string a = lib.Digest(Secure("Pa$$w0rd"), null, 0);
            string b = lib.Digest(Secure("Pa$$w0rd"), null, 0);
            True(Regex.IsMatch(a, "^v1;PPH1_MD4,[0-9a-f]{20},1000,[0-9a-f]{64};$"), "shape: " + a);
            True(a != b, "two random salts gave the same digest");
            True(lib.Verify(a, Secure("Pa$$w0rd")), "verify");
            Contains(lib.Digest(Secure("Pa$$w0rd"), null, 100), ",100,", "iterations 100");
        });

        Test("verify: match and mismatch", delegate
        {
            True(lib.Verify(vector, Secure("Pa$$w0rd")), "match");
            True(!lib.Verify(vector, Secure("Pa$$w0rD")), "mismatch");
            True(!lib.Verify(vector, new SecureString()), "empty mismatch");
            True(lib.VerifyNtHash(vector, "92937945B518814341DE3F726500D4FF"), "nt match");
            True(!lib.VerifyNtHash(vector, "31D6CFE0D16AE931B73C59D7E0C089C0"), "nt mismatch");
        });

        Test("verify of a non-ASCII password through the SecureString path", delegate
        {
            string d = lib.Digest(Secure("\u017elu\u0165ou\u010dk\u00fd k\u016f\u0148"), salt, 1000);
            True(lib.VerifyNtHash(d, "0D90FB43740BE81B67E6A79A113817C4"), "digest of the UTF-16 password matches its NT hash");
            True(lib.Verify(d, Secure("\u017elu\u0165ou\u010dk\u00fd k\u016f\u0148")), "verify");
            True(!lib.Verify(d, Secure("zlutoucky kun")), "ASCII look-alike must not match");
        });

        Test("error paths: malformed digest, bad iterations, too long", delegate
        {
            Status("PHS_E_MALFORMED_DIGEST", delegate { lib.Verify("v1;PPH1_MD4,zz", Secure("x")); });
            Status("PHS_E_MALFORMED_DIGEST", delegate { lib.Verify("", Secure("x")); });
            Status("PHS_E_INVALID_ARGUMENT", delegate { lib.Digest(Secure("x"), salt, 2000000); });
            Status("PHS_E_PASSWORD_TOO_LONG", delegate { lib.NtHash(Secure(new string('a', 513))); });
        });

        Test("error paths: NULL arguments reach the library as NULL", delegate
        {
            Status("PHS_E_NULL_ARGUMENT", delegate { lib.Verify(null, Secure("x")); });
            Status("PHS_E_NULL_ARGUMENT", delegate { lib.DigestFromNtHash(null, salt, 0); });
            Status("PHS_E_NULL_ARGUMENT", delegate { lib.OpenCloud(null); });
            Throws<ArgumentNullException>(delegate { lib.NtHash(null); });
        });

        Test("error paths: bad hex is refused before native code", delegate
        {
            Throws<ArgumentException>(delegate { lib.DigestFromNtHashHex("1234", null, 0); });
            Throws<ArgumentException>(delegate { lib.DigestFromNtHashHex("g2937945B518814341DE3F726500D4FF", null, 0); });
            Throws<ArgumentException>(delegate { lib.DigestFromNtHashHex("92937945B518814341DE3F726500D4FF", "00", 0); });
        });

        // ---- tenant --------------------------------------------------------------------------
        string tenantFile = Path.Combine(work, "tenant.db");
        string upn = "alice@example.com";
        string upnUnicode = "j\u00f3zef.\u0161ev\u010d\u00edk@example.com";
        bool tenantReady = false;
        Test("tenant users created with the CLI", delegate
        {
            Cli(cli, "cloud", "--tenant", tenantFile, "user", "add", "--upn", upn);
            Cli(cli, "cloud", "--tenant", tenantFile, "user", "add", "--upn", upnUnicode);
            tenantReady = true;
        });

        if (tenantReady)
        {
            PhsyncCloud cloud = null;
            Test("opens the tenant file", delegate { cloud = lib.OpenCloud(tenantFile); });
            if (cloud != null)
            {
                string strong = "Corr3ct-Horse-\u0160tapl\u00e9";
                Test("set-password then sign-in succeeds", delegate
                {
                    string set = cloud.SetPassword(upn, Secure(strong), false);
                    Equal("applied", Field(set, "result"), "result");
                    Equal(upn, Field(set, "user_principal_name"), "upn");
                    Equal("false", Field(set, "force_change_at_next_sign_in"), "force");
                    string ok = cloud.SignIn(upn, Secure(strong));
                    Equal("success", Field(ok, "result"), "sign-in");
                    True(Field(ok, "session_token").Length > 0, "session token");
                });

                Test("sign-in with a wrong password is refused (a result, not an error)", delegate
                {
                    Equal("invalid_credentials", Field(cloud.SignIn(upn, Secure(strong + "x")), "result"), "result");
                    Equal("invalid_credentials", Field(cloud.SignIn("nobody@example.com", Secure(strong)), "result"), "unknown user");
                });

                Test("force change at next sign-in", delegate
                {
                    string set = cloud.SetPassword(upn, Secure(strong + "2"), true);
                    Equal("true", Field(set, "force_change_at_next_sign_in"), "force");
                    Equal("must_change_password", Field(cloud.SignIn(upn, Secure(strong + "2")), "result"), "sign-in");
                });

                Test("a weak password is a policy error", delegate
                {
                    Status("PHS_E_PASSWORD_POLICY", delegate { cloud.SetPassword(upn, Secure("short"), false); });
                    Status("PHS_E_PASSWORD_POLICY", delegate { cloud.SetPassword(upn, Secure("alllowercaseletters"), false); });
                });

                Test("an unknown user is PHS_E_NOT_FOUND", delegate
                {
                    Status("PHS_E_NOT_FOUND", delegate { cloud.SetPassword("nobody@example.com", Secure(strong), false); });
                    Status("PHS_E_NOT_FOUND", delegate { cloud.User("nobody@example.com"); });
                });

                Test("NULL and empty arguments", delegate
                {
                    Status("PHS_E_NULL_ARGUMENT", delegate { cloud.User(null); });
                    Status("PHS_E_NULL_ARGUMENT", delegate { cloud.SignIn(null, Secure(strong)); });
                    // An empty UPN reaches the library as "" (not NULL): no such user.
                    PhsyncException e = Status("PHS_E_NOT_FOUND", delegate { cloud.SetPassword("", Secure(strong), false); });
                    Contains(e.NativeMessage, "\"\"", "message names the empty UPN");
                    Throws<ArgumentNullException>(delegate { cloud.SetPassword(upn, null, false); });
                });

                Test("non-ASCII UPN and password round-trip as UTF-8 / UTF-16", delegate
                {
                    string set = cloud.SetPassword(upnUnicode, Secure(strong), false);
                    Equal(upnUnicode, Field(set, "user_principal_name"), "upn in result");
                    Equal("success", Field(cloud.SignIn(upnUnicode, Secure(strong)), "result"), "sign-in");
                    Equal(upnUnicode, Field(cloud.User(upnUnicode), "user_principal_name"), "phs_cloud_user");
                    PhsyncException e = Status("PHS_E_NOT_FOUND", delegate { cloud.User("\u0148\u011bkdo@example.com"); });
                    Contains(e.NativeMessage, "\u0148\u011bkdo@example.com", "native message decoded as UTF-8");
                });

                Test("phs_cloud_user and dispose", delegate
                {
                    string user = cloud.User(upn);
                    Equal(upn, Field(user, "user_principal_name"), "upn");
                    cloud.Dispose();
                    Throws<ObjectDisposedException>(delegate { cloud.User(upn); });
                    cloud.Dispose();
                });
            }
        }

        Test("a storage error: a tenant path in a missing folder", delegate
        {
            Status("PHS_E_STORAGE", delegate { lib.OpenCloud(Path.Combine(Path.Combine(work, "no-such-dir"), "t.db")).Dispose(); });
        });

        // ---- engine --------------------------------------------------------------------------
        Test("HasExport tells present from absent exports", delegate
        {
            True(lib.HasExport("phs_cloud_open"), "phs_cloud_open");
            True(!lib.HasExport("phs_no_such_export"), "phs_no_such_export");
        });

        RunRemoteTests(lib);

        RunFakeEngineTests(fakeDir);

        if (!lib.HasExport("phs_engine_open"))
        {
            Test("without the engine exports, only the engine calls fail, naming the export", delegate
            {
                PhsyncMissingExportException e = Throws<PhsyncMissingExportException>(delegate { lib.OpenEngine("/nonexistent.toml"); });
                Equal("phs_engine_open", e.Export, "export");
                Contains(e.Message, "phs_engine_open", "message");
                Contains(e.Message, lib.Path, "message");
                Equal("92937945B518814341DE3F726500D4FF", lib.NtHash(Secure("Pa$$w0rd")), "hashing still works");
            });
            Console.WriteLine("SKIP engine tests: library lacks phs_engine_open");
        }
        else
        {
            RunEngineTests(lib, work);
        }

        Console.WriteLine(string.Format("{0} passed, {1} failed", passed, failed));
        return failed == 0 ? 0 : 1;
    }

    /// <summary>The engine delegates against the test double (fake_engine.c).</summary>
    // A tenant service (phsync cloud serve) that scripts/test-powershell started: the same
    // tenant calls as on a file, over HTTPS, plus its own failures as status codes.
    static void RunRemoteTests(PhsyncLibrary lib)
    {
        string url = Environment.GetEnvironmentVariable("PHSYNC_PS_REMOTE_URL");
        string token = Environment.GetEnvironmentVariable("PHSYNC_PS_REMOTE_TOKEN");
        string ca = Environment.GetEnvironmentVariable("PHSYNC_PS_REMOTE_CA");
        string upn = Environment.GetEnvironmentVariable("PHSYNC_PS_REMOTE_USER");
        Test("remote tests have a service URL, token file, CA file and user", delegate
        {
            True(!string.IsNullOrEmpty(url) && !string.IsNullOrEmpty(token) && File.Exists(token)
                && !string.IsNullOrEmpty(ca) && File.Exists(ca) && !string.IsNullOrEmpty(upn),
                "PHSYNC_PS_REMOTE_URL/_TOKEN/_CA/_USER are unset or missing");
        });
        if (string.IsNullOrEmpty(url)) return;
        Test("remote tenant: reset then sign in over HTTPS", delegate
        {
            using (PhsyncCloud cloud = lib.OpenRemoteCloud(url, token, ca))
            {
                string strong = "Over-The-W1re-\u0160tapl\u00e9";
                Equal("applied", Field(cloud.SetPassword(upn, Secure(strong), false), "result"), "result");
                Equal("success", Field(cloud.SignIn(upn, Secure(strong)), "result"), "sign-in");
                Equal("invalid_credentials", Field(cloud.SignIn(upn, Secure("Wrong-Passw0rd-1")), "result"), "wrong");
                Status("PHS_E_PASSWORD_POLICY", delegate { cloud.SetPassword(upn, Secure("weak"), false); });
                Status("PHS_E_NOT_FOUND", delegate { cloud.SetPassword("nobody@example.com", Secure(strong), false); });
            }
        });
        Test("remote tenant: failures are status codes with messages", delegate
        {
            string bogus = Path.Combine(Path.GetDirectoryName(token), "bogus.token");
            Status("PHS_E_ACCESS_DENIED", delegate { lib.OpenRemoteCloud(url, bogus, ca).Dispose(); });
            Status("PHS_E_UNREACHABLE", delegate { lib.OpenRemoteCloud("https://127.0.0.1:9", token, ca).Dispose(); });
            Status("PHS_E_NULL_ARGUMENT", delegate { lib.OpenRemoteCloud(url, null, ca).Dispose(); });
            Status("PHS_E_INVALID_ARGUMENT", delegate { lib.OpenRemoteCloud("/tmp/t.db", token, null).Dispose(); });
        });
    }

    static void RunFakeEngineTests(string fakeDir)
    {
        PhsyncLibrary fake = null;
        Test("fake engine: loads the test double", delegate { fake = PhsyncLibrary.Load(fakeDir); });
        if (fake == null) return;

        Test("fake engine: open passes the config path as UTF-8; errors carry the status name", delegate
        {
            PhsyncException e = Status("PHS_E_CONFIG", delegate { fake.OpenEngine("/etc/ph\u0161sync.ini"); });
            Contains(e.NativeMessage, "/etc/ph\u0161sync.ini", "message");
            Status("PHS_E_NULL_ARGUMENT", delegate { fake.OpenEngine(null); });
        });

        Test("fake engine: a full cycle marshals flags, the progress callback and 64-bit counts", delegate
        {
            using (PhsyncEngine engine = fake.OpenEngine("/etc/\u017e/phsync.toml"))
            {
                string seen = "";
                string json = engine.SyncCycle(true, delegate(string stage, ulong done, ulong total)
                {
                    seen += stage + "=" + done + "/" + total + ";";
                });
                Equal("scope=0/5000000000;replicate=4294967297/5000000000;ov\u011b\u0159en\u00ed=5000000000/5000000000;", seen, "progress calls");
                Equal("full", Field(json, "mode"), "mode");
                Equal("true", Field(json, "progress"), "a handler is passed as a function pointer");
                Equal("true", Field(json, "context_null"), "context");
                Equal("/etc/\u017e/phsync.toml", Field(json, "config"), "config path round trip");
            }
        });

        Test("fake engine: an incremental cycle without a handler passes NULL", delegate
        {
            using (PhsyncEngine engine = fake.OpenEngine("a.toml"))
            {
                string json = engine.SyncCycle(false, null);
                Equal("incremental", Field(json, "mode"), "mode");
                Equal("false", Field(json, "progress"), "no handler is NULL");
            }
        });

        Test("fake engine: an exception in the handler stops further calls and surfaces after the cycle", delegate
        {
            using (PhsyncEngine engine = fake.OpenEngine("a.toml"))
            {
                int calls = 0;
                InvalidOperationException e = Throws<InvalidOperationException>(delegate
                {
                    engine.SyncCycle(true, delegate(string stage, ulong done, ulong total)
                    {
                        calls++;
                        throw new InvalidOperationException("handler boom");
                    });
                });
                Equal("handler boom", e.Message, "message");
                Equal(1, calls, "handler calls after the first exception");
            }
        });

        Test("fake engine: sync one user and user status (UTF-8 both ways, not found, dispose)", delegate
        {
            PhsyncEngine engine = fake.OpenEngine("a.toml");
            Equal("j\u00f6rg", Field(engine.SyncUser("j\u00f6rg"), "sam_account_name"), "sync user");
            Contains(engine.UserStatus("known"), "\"history\"", "status");
            PhsyncException e = Status("PHS_E_NOT_FOUND", delegate { engine.UserStatus("n\u00e9mo"); });
            Contains(e.NativeMessage, "n\u00e9mo", "message");
            Status("PHS_E_NULL_ARGUMENT", delegate { engine.SyncUser(null); });
            engine.Dispose();
            Throws<ObjectDisposedException>(delegate { engine.UserStatus("known"); });
            engine.Dispose();
        });
    }

    static void RunEngineTests(PhsyncLibrary lib, string work)
    {
        string config = Environment.GetEnvironmentVariable("PHSYNC_PS_ENGINE_CONFIG");
        string user = Environment.GetEnvironmentVariable("PHSYNC_PS_ENGINE_USER");
        Test("engine tests have a config (PHSYNC_PS_ENGINE_CONFIG) and a user (PHSYNC_PS_ENGINE_USER)", delegate
        {
            True(!string.IsNullOrEmpty(config) && File.Exists(config), "PHSYNC_PS_ENGINE_CONFIG is unset or not a file: " + config);
            True(!string.IsNullOrEmpty(user), "PHSYNC_PS_ENGINE_USER is unset");
        });
        if (string.IsNullOrEmpty(config) || !File.Exists(config) || string.IsNullOrEmpty(user)) return;

        Test("a missing config is PHS_E_CONFIG", delegate
        {
            Status("PHS_E_CONFIG", delegate { lib.OpenEngine(Path.Combine(work, "no-such-config.toml")).Dispose(); });
        });

        PhsyncEngine engine = null;
        Test("opens the engine", delegate { engine = lib.OpenEngine(config); });
        if (engine == null) return;
        using (engine)
        {
            Test("a full sync cycle reports progress and a result", delegate
            {
                int calls = 0;
                string stages = "";
                string json = engine.SyncCycle(true, delegate(string stage, ulong done, ulong total)
                {
                    calls++;
                    True(!string.IsNullOrEmpty(stage), "empty stage");
                    stages += stage + " ";
                });
                Equal("full", Field(json, "mode"), "mode");
                Equal("true", Field(json, "ok"), "ok (" + json + ")");
                True(int.Parse(Field(json, "in_scope")) > 0, "in_scope > 0");
                True(calls > 0, "no progress callback");
                Contains(stages, "scope", "stages");
            });

            Test("an incremental cycle without a progress handler", delegate
            {
                Equal("incremental", Field(engine.SyncCycle(false, null), "mode"), "mode");
            });

            Test("an exception in the progress handler surfaces after the cycle", delegate
            {
                InvalidOperationException e = Throws<InvalidOperationException>(delegate
                {
                    engine.SyncCycle(false, delegate(string stage, ulong done, ulong total) { throw new InvalidOperationException("handler boom"); });
                });
                Equal("handler boom", e.Message, "message");
            });

            Test("sync one user and read its status", delegate
            {
                string one = engine.SyncUser(user);
                True(Field(one, "status").Length > 0, "status");
                string status = engine.UserStatus(user);
                Contains(status, "\"history\"", "history");
                True(Field(status, "object_guid").Length > 0, "object_guid");
                string all = engine.SyncStatus();
                Contains(all, "\"last_cycle\"", "last_cycle");
                Contains(all, "\"sam_account_name\":\"" + user + "\"", "every user's status lists the user");
            });

            Test("an unknown user is PHS_E_NOT_FOUND", delegate
            {
                Status("PHS_E_NOT_FOUND", delegate { engine.UserStatus("no-such-user-7f3a"); });
            });
        }
    }
}
