// The hashing cmdlets: NT hash, PHS digest, and checking a password against a digest.
// Passwords reach the library only as UTF-16 from the SecureString's unmanaged copy.

using System;
using System.Management.Automation;
using System.Security;
using PasswordHashSync.Native;

namespace PasswordHashSync.Cmdlets
{
    /// <summary>ConvertTo-NTHash: the NT hash (MD4 of UTF-16LE) of a password.</summary>
    [Cmdlet(VerbsData.ConvertTo, "NTHash")]
    [OutputType(typeof(string))]
    public sealed class ConvertToNTHashCommand : PhsCmdlet
    {
        [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
        public SecureString Password { get; set; }

        protected override void ProcessRecord()
        {
            try
            {
                WriteObject(Lib.NtHash(Password));
            }
            catch (Exception e) when (!(e is RuntimeException))
            {
                WriteError(ErrorFor(e, null));
            }
        }
    }

    /// <summary>ConvertTo-PasswordHashSyncDigest: the v1;PPH1_MD4 digest of a password or NT hash.</summary>
    [Cmdlet(VerbsData.ConvertTo, "PasswordHashSyncDigest", DefaultParameterSetName = "Password")]
    [OutputType(typeof(string))]
    public sealed class ConvertToPasswordHashSyncDigestCommand : PhsCmdlet
    {
        [Parameter(Mandatory = true, Position = 0, ParameterSetName = "Password", ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
        public SecureString Password { get; set; }

        [Parameter(Mandatory = true, ParameterSetName = "NTHash", ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
        [ValidatePattern("^[0-9A-Fa-f]{32}$")]
        public string NTHash { get; set; }

        [Parameter]
        [ValidatePattern("^[0-9A-Fa-f]{20}$")]
        public string Salt { get; set; }

        [Parameter]
        [ValidateRange(1, 1000000)]
        public int Iterations { get; set; } = 1000;

        protected override void ProcessRecord()
        {
            try
            {
                if (ParameterSetName == "NTHash")
                    WriteObject(Lib.DigestFromNtHashHex(NTHash, Salt, (uint)Iterations));
                else
                    WriteObject(Lib.Digest(Password, Salt == null ? null : PhsyncLibrary.FromHex(Salt, 10, "Salt"), (uint)Iterations));
            }
            catch (Exception e) when (!(e is RuntimeException))
            {
                WriteError(ErrorFor(e, null));
            }
        }
    }

    /// <summary>Test-PasswordHashSyncDigest: whether a password (or NT hash) matches a digest.</summary>
    [Cmdlet(VerbsDiagnostic.Test, "PasswordHashSyncDigest", DefaultParameterSetName = "Password")]
    [OutputType(typeof(bool))]
    public sealed class TestPasswordHashSyncDigestCommand : PhsCmdlet
    {
        [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
        [ValidateNotNullOrEmpty]
        public string Digest { get; set; }

        [Parameter(Mandatory = true, Position = 1, ParameterSetName = "Password", ValueFromPipelineByPropertyName = true)]
        public SecureString Password { get; set; }

        [Parameter(Mandatory = true, ParameterSetName = "NTHash", ValueFromPipelineByPropertyName = true)]
        [ValidatePattern("^[0-9A-Fa-f]{32}$")]
        public string NTHash { get; set; }

        protected override void ProcessRecord()
        {
            try
            {
                WriteObject(ParameterSetName == "NTHash" ? Lib.VerifyNtHash(Digest, NTHash) : Lib.Verify(Digest, Password));
            }
            catch (Exception e) when (!(e is RuntimeException))
            {
                // A malformed digest is an error, never a "match" (nor a silent false).
                WriteError(ErrorFor(e, null));
            }
        }
    }
}
