// The cloud tenant cmdlets: an administrator's reset, a sign-in test, reading a user, and
// ending a user's sessions.

using System;
using System.Management.Automation;
using System.Security;
using PasswordHashSync.Native;

namespace PasswordHashSync.Cmdlets
{
    /// <summary>Set-CloudPassword: an administrator's reset under the cloud password policy.</summary>
    [Cmdlet(VerbsCommon.Set, "CloudPassword", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
    [OutputType(typeof(CloudPasswordResult))]
    public sealed class SetCloudPasswordCommand : CloudCmdlet
    {
        [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
        [Alias("UPN", "UserName")]
        [ValidateNotNullOrEmpty]
        public string UserPrincipalName { get; set; }

        [Parameter(Mandatory = true, Position = 1, ValueFromPipelineByPropertyName = true)]
        public SecureString Password { get; set; }

        [Parameter(ValueFromPipelineByPropertyName = true)]
        public SwitchParameter ForceChangePasswordNextSignIn { get; set; }

        protected override void ProcessRecord()
        {
            if (!ShouldProcess(UserPrincipalName + " in tenant " + TenantDisplay, "Reset cloud password")) return;
            try
            {
                string json = Cloud.SetPassword(UserPrincipalName, Password, ForceChangePasswordNextSignIn.IsPresent);
                WriteObject(CloudPasswordResult.FromJson(Json.ParseObject(json)));
            }
            catch (Exception e) when (!(e is RuntimeException))
            {
                WriteError(ErrorFor(e, UserPrincipalName));
            }
        }
    }

    /// <summary>Test-CloudSignIn: signs a user in and returns the outcome (a refusal is a result).</summary>
    [Cmdlet(VerbsDiagnostic.Test, "CloudSignIn")]
    [OutputType(typeof(SignInResult))]
    public sealed class TestCloudSignInCommand : CloudCmdlet
    {
        // UserName binds a PSCredential from Get-Credential by property name.
        [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
        [Alias("UPN", "UserName")]
        [ValidateNotNullOrEmpty]
        public string UserPrincipalName { get; set; }

        [Parameter(Mandatory = true, Position = 1, ValueFromPipelineByPropertyName = true)]
        public SecureString Password { get; set; }

        protected override void ProcessRecord()
        {
            try
            {
                WriteObject(SignInResult.FromJson(Json.ParseObject(Cloud.SignIn(UserPrincipalName, Password))));
            }
            catch (Exception e) when (!(e is RuntimeException))
            {
                WriteError(ErrorFor(e, UserPrincipalName));
            }
        }
    }

    /// <summary>Revoke-CloudSession: ends every sign-in session of a user now (the password is unchanged).</summary>
    [Cmdlet(VerbsSecurity.Revoke, "CloudSession", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
    [OutputType(typeof(CloudSessionRevocation))]
    public sealed class RevokeCloudSessionCommand : CloudCmdlet
    {
        // Bare strings and objects with a UserPrincipalName (Get-CloudUser), UPN or UserName bind.
        [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
        [Alias("UPN", "UserName")]
        [ValidateNotNullOrEmpty]
        public string UserPrincipalName { get; set; }

        protected override void ProcessRecord()
        {
            if (!ShouldProcess(UserPrincipalName + " in tenant " + TenantDisplay, "Revoke all cloud sign-in sessions")) return;
            try
            {
                WriteObject(CloudSessionRevocation.FromJson(Json.ParseObject(Cloud.RevokeSessions(UserPrincipalName))));
            }
            catch (Exception e) when (!(e is RuntimeException))
            {
                WriteError(ErrorFor(e, UserPrincipalName));
            }
        }
    }

    /// <summary>Get-CloudUser: a user of the tenant, with where its password came from; never a digest.</summary>
    [Cmdlet(VerbsCommon.Get, "CloudUser")]
    [OutputType(typeof(CloudUser))]
    public sealed class GetCloudUserCommand : CloudCmdlet
    {
        [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
        [Alias("UPN", "UserName")]
        [ValidateNotNullOrEmpty]
        public string[] UserPrincipalName { get; set; }

        protected override void ProcessRecord()
        {
            foreach (string upn in UserPrincipalName)
            {
                try
                {
                    WriteObject(CloudUser.FromJson(Json.ParseObject(Cloud.User(upn))));
                }
                catch (Exception e) when (!(e is RuntimeException))
                {
                    WriteError(ErrorFor(e, upn));
                }
            }
        }
    }
}
