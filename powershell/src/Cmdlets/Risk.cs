// Get-CloudUserRisk: the tenant's leaked-credentials marks (issue 18), for administrators.

using System;
using System.Management.Automation;
using PasswordHashSync.Native;

namespace PasswordHashSync.Cmdlets
{
    /// <summary>Get-CloudUserRisk: users marked at risk (leaked credentials), or the marks of
    /// the named users; kind, time detected and breach count, never a hash.</summary>
    [Cmdlet(VerbsCommon.Get, "CloudUserRisk")]
    [OutputType(typeof(CloudUserRisk))]
    public sealed class GetCloudUserRiskCommand : CloudCmdlet
    {
        // Without names: every marked user of the tenant.
        [Parameter(Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
        [Alias("UPN", "UserName")]
        [ValidateNotNullOrEmpty]
        public string[] UserPrincipalName { get; set; }

        protected override void ProcessRecord()
        {
            if (UserPrincipalName == null)
            {
                try
                {
                    foreach (object r in Json.ParseObject(Cloud.Risks()).Arr("risks"))
                    {
                        JsonObject o = r as JsonObject;
                        if (o != null) WriteObject(CloudUserRisk.FromJson(o));
                    }
                }
                catch (Exception e) when (!(e is RuntimeException))
                {
                    WriteError(ErrorFor(e, TenantDisplay));
                }
                return;
            }
            foreach (string upn in UserPrincipalName)
            {
                try
                {
                    foreach (CloudUserRisk r in CloudUser.FromJson(Json.ParseObject(Cloud.User(upn))).Risks)
                        WriteObject(r);
                }
                catch (Exception e) when (!(e is RuntimeException))
                {
                    WriteError(ErrorFor(e, upn));
                }
            }
        }
    }
}
