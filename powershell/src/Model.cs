// The objects the cmdlets write: PascalCase properties and DateTimeOffset (UTC) times, built
// from the native library's JSON, identical on Windows PowerShell 5.1 and PowerShell 7.
// PasswordHashSync.Format.ps1xml gives each a default table view.

using System;
using System.Collections;
using System.Collections.Generic;
using System.Globalization;
using PasswordHashSync.Native;

namespace PasswordHashSync
{
    /// <summary>One user's result in a cycle, or of Invoke-PasswordHashSync -UserName.</summary>
    public class UserSyncResult
    {
        public Guid ObjectGuid { get; set; }
        public string SamAccountName { get; set; }
        public string UserPrincipalName { get; set; }
        public string SourceAnchor { get; set; }
        public DateTimeOffset? LastAttemptAt { get; set; }
        /// <summary>Success, FilteredByTarget, RetryRequestedByTarget, MissingAttribute, Error, ...</summary>
        public string Status { get; set; }
        public string Reason { get; set; }
        public DateTimeOffset? OnPremChangedAt { get; set; }
        public DateTimeOffset? AppliedAt { get; set; }
        /// <summary>none, queued or abandoned.</summary>
        public string RetryState { get; set; }
        public int RetryAttempts { get; set; }
        public DateTimeOffset? NextRetryAt { get; set; }

        /// <summary>True for outcomes that leave the user's cloud password behind the on-prem one.</summary>
        public bool IsFailure
        {
            get { return !(Status == "Success" || Status == "FilteredByTarget"); }
        }

        internal static void Fill(UserSyncResult r, JsonObject o)
        {
            Guid g;
            if (Guid.TryParse(o.Str("object_guid") ?? "", out g)) r.ObjectGuid = g;
            r.SamAccountName = o.Str("sam_account_name");
            r.UserPrincipalName = o.Str("user_principal_name");
            r.SourceAnchor = o.Str("source_anchor");
            r.LastAttemptAt = o.Date("last_attempt_at");
            r.Status = o.Str("status");
            r.Reason = o.Str("reason");
            r.OnPremChangedAt = o.Date("onprem_changed_at");
            r.AppliedAt = o.Date("applied_at");
            JsonObject retry = o.Obj("retry");
            r.RetryState = retry == null ? "none" : (retry.Str("state") ?? "none");
            r.RetryAttempts = retry == null ? 0 : (int)retry.Long("attempts");
            r.NextRetryAt = retry == null ? null : retry.Date("next_attempt_at");
        }

        internal static UserSyncResult FromJson(JsonObject o)
        {
            UserSyncResult r = new UserSyncResult();
            Fill(r, o);
            return r;
        }
    }

    /// <summary>One past attempt of a user's sync.</summary>
    public class SyncHistoryEntry
    {
        public DateTimeOffset? At { get; set; }
        public string Status { get; set; }
        public string Reason { get; set; }
    }

    /// <summary>A user's diagnostics: the last result and the history of attempts.</summary>
    public class UserSyncStatus : UserSyncResult
    {
        public SyncHistoryEntry[] History { get; set; }

        internal static new UserSyncStatus FromJson(JsonObject o)
        {
            UserSyncStatus s = new UserSyncStatus();
            Fill(s, o);
            List<SyncHistoryEntry> h = new List<SyncHistoryEntry>();
            foreach (object e in o.Arr("history"))
            {
                JsonObject j = e as JsonObject;
                if (j == null) continue;
                h.Add(new SyncHistoryEntry { At = j.Date("at"), Status = j.Str("status"), Reason = j.Str("reason") });
            }
            s.History = h.ToArray();
            return s;
        }
    }

    /// <summary>The counts every cycle summary has.</summary>
    public abstract class CycleCounts
    {
        /// <summary>full or incremental.</summary>
        public string Mode { get; set; }
        public DateTimeOffset? StartedAt { get; set; }
        public DateTimeOffset? FinishedAt { get; set; }
        public bool Ok { get; set; }
        public long InScope { get; set; }
        public long Changes { get; set; }
        public long Applied { get; set; }
        public long Stale { get; set; }
        public long Filtered { get; set; }
        public long Disabled { get; set; }
        public long Failed { get; set; }
        public long RetryQueued { get; set; }

        public TimeSpan? Duration
        {
            get { return StartedAt.HasValue && FinishedAt.HasValue ? FinishedAt.Value - StartedAt.Value : (TimeSpan?)null; }
        }

        internal void FillCounts(JsonObject o)
        {
            Mode = o.Str("mode");
            StartedAt = o.Date("started_at");
            FinishedAt = o.Date("finished_at");
            Ok = o.Bool("ok");
            InScope = o.Long("in_scope");
            Changes = o.Long("changes");
            Applied = o.Long("applied");
            Stale = o.Long("stale");
            Filtered = o.Long("filtered");
            Disabled = o.Long("disabled");
            Failed = o.Long("failed");
            RetryQueued = o.Long("retry_queued");
        }
    }

    /// <summary>The result of one sync cycle (Invoke-PasswordHashSync).</summary>
    public class SyncCycleResult : CycleCounts
    {
        public UserSyncResult[] Users { get; set; }

        internal static SyncCycleResult FromJson(JsonObject o)
        {
            SyncCycleResult r = new SyncCycleResult();
            r.FillCounts(o);
            List<UserSyncResult> users = new List<UserSyncResult>();
            foreach (object u in o.Arr("users"))
            {
                JsonObject j = u as JsonObject;
                if (j != null) users.Add(UserSyncResult.FromJson(j));
            }
            r.Users = users.ToArray();
            return r;
        }
    }

    /// <summary>The engine's last cycle, as stored in its state (null in a status when it never ran).</summary>
    public class LastSyncCycle : CycleCounts
    {
        /// <summary>Why the cycle failed as a whole (DC or tenant unreachable, stopped), else null.</summary>
        public string Error { get; set; }

        internal static LastSyncCycle FromJson(JsonObject o)
        {
            if (o == null) return null;
            LastSyncCycle c = new LastSyncCycle();
            c.FillCounts(o);
            c.Error = o.Str("error");
            return c;
        }
    }

    /// <summary>The DC's change notifications as the running (or last) Start-PasswordHashSync
    /// or phsync run stored them.</summary>
    public class NotificationStatus
    {
        /// <summary>connecting, connected, lost, unsupported, disabled, stopped, or stale (the run that stored it is gone).</summary>
        public string State { get; set; }
        /// <summary>True while the notification search is open: changes sync within seconds.</summary>
        public bool Live { get; set; }
        /// <summary>When State last changed.</summary>
        public DateTimeOffset? Since { get; set; }
        /// <summary>When the last change notification arrived.</summary>
        public DateTimeOffset? LastNotificationAt { get; set; }
        /// <summary>The DC's URL when connected, why not when lost, unsupported or stale.</summary>
        public string Detail { get; set; }
        /// <summary>The change source in use: notifications, or dirsync where the DC refuses
        /// notifications (null before one connected).</summary>
        public string Source { get; set; }
        /// <summary>The process of the run (Start-PasswordHashSync's PowerShell, or phsync run)
        /// that stored this state.</summary>
        public int? ProcessId { get; set; }
        /// <summary>The run's last heartbeat (every 10 s); a state whose run is gone or silent
        /// for 60 s reads as stale.</summary>
        public DateTimeOffset? HeartbeatAt { get; set; }
        /// <summary>What the change-driven batches of the run did.</summary>
        public ChangeSyncStats Stats { get; set; }

        internal static NotificationStatus FromJson(JsonObject o)
        {
            if (o == null) return null;
            return new NotificationStatus
            {
                State = o.Str("state"),
                Live = o.Bool("live"),
                Since = o.Date("since"),
                LastNotificationAt = o.Date("last_notification_at"),
                Detail = o.Str("detail"),
                Source = o.Str("source"),
                ProcessId = o.ContainsKey("pid") ? (int?)o.Long("pid") : null,
                HeartbeatAt = o.Date("heartbeat_at"),
                Stats = ChangeSyncStats.FromJson(o.Obj("stats")),
            };
        }

        public override string ToString()
        {
            return string.IsNullOrEmpty(Detail) ? State : State + " (" + Detail + ")";
        }
    }

    /// <summary>Counters of a run's change-driven sync (NotificationStatus.Stats).</summary>
    public class ChangeSyncStats
    {
        /// <summary>Changed users and groups the change source reported.</summary>
        public long Changes { get; set; }
        /// <summary>Users whose password was replicated alone (single-object GetNCChanges).</summary>
        public long Replicated { get; set; }
        /// <summary>Users applied without a replication (disabled, moved, renamed).</summary>
        public long AppliedWithoutReplication { get; set; }
        /// <summary>Users skipped: nothing password hash sync uses changed.</summary>
        public long Unchanged { get; set; }
        /// <summary>Scope re-reads after a scoping group changed.</summary>
        public long ScopeReads { get; set; }

        internal static ChangeSyncStats FromJson(JsonObject o)
        {
            if (o == null) return new ChangeSyncStats();
            return new ChangeSyncStats
            {
                Changes = o.Long("changes"),
                Replicated = o.Long("replicated"),
                AppliedWithoutReplication = o.Long("applied_without_replication"),
                Unchanged = o.Long("unchanged"),
                ScopeReads = o.Long("scope_reads"),
            };
        }

        public override string ToString()
        {
            return string.Format(CultureInfo.InvariantCulture,
                "{0} changes, {1} replicated, {2} applied without replication, {3} unchanged, {4} scope reads",
                Changes, Replicated, AppliedWithoutReplication, Unchanged, ScopeReads);
        }
    }

    /// <summary>Get-PasswordHashSyncStatus without -UserName: when it last ran, how it went, what is scheduled.</summary>
    public class PasswordHashSyncStatus
    {
        public string ConfigPath { get; set; }
        public LastSyncCycle LastCycle { get; set; }
        /// <summary>The change notifications of Start-PasswordHashSync (or phsync run); null if it never ran.</summary>
        public NotificationStatus Notifications { get; set; }
        public bool NotificationsLive { get { return Notifications != null && Notifications.Live; } }
        public DateTimeOffset? LastCycleFinishedAt { get { return LastCycle == null ? null : LastCycle.FinishedAt; } }
        public bool? LastCycleOk { get { return LastCycle == null ? (bool?)null : LastCycle.Ok; } }
        /// <summary>Scheduled tasks (systemd timer, cron entry or Windows task) that run this config.</summary>
        public ScheduledSync[] ScheduledTasks { get; set; }
        public bool SchedulerEnabled { get { return ScheduledTasks != null && ScheduledTasks.Length > 0; } }
        /// <summary>When the next scheduled cycle is due: the last finish plus the shortest interval.</summary>
        public DateTimeOffset? NextCycleDueAt { get; set; }
        public int UserCount { get; set; }
        public int FailedUserCount { get; set; }
        public UserSyncResult[] Users { get; set; }
    }

    /// <summary>Set-CloudPassword's result.</summary>
    public class CloudPasswordResult
    {
        public string UserPrincipalName { get; set; }
        public string Result { get; set; }
        public DateTimeOffset? ChangedAt { get; set; }
        public bool ForceChangePasswordNextSignIn { get; set; }
        public DateTimeOffset? PasswordExpiresAt { get; set; }

        internal static CloudPasswordResult FromJson(JsonObject o)
        {
            return new CloudPasswordResult
            {
                UserPrincipalName = o.Str("user_principal_name"),
                Result = o.Str("result"),
                ChangedAt = o.Date("changed_at"),
                ForceChangePasswordNextSignIn = o.Bool("force_change_at_next_sign_in"),
                PasswordExpiresAt = o.Date("password_expires_at"),
            };
        }
    }

    /// <summary>Test-CloudSignIn's result; the session token is never kept.</summary>
    public class SignInResult
    {
        public string UserPrincipalName { get; set; }
        /// <summary>success, invalid_credentials, must_change_password, password_expired, account_disabled, locked_out.</summary>
        public string Result { get; set; }
        public bool Succeeded { get; set; }
        public DateTimeOffset? SessionExpiresAt { get; set; }

        internal static SignInResult FromJson(JsonObject o)
        {
            string result = o.Str("result");
            return new SignInResult
            {
                UserPrincipalName = o.Str("user_principal_name"),
                Result = result,
                Succeeded = result == "success",
                SessionExpiresAt = o.Date("session_expires_at"),
            };
        }
    }

    /// <summary>Revoke-CloudSession's result: how many sign-in sessions of the user were ended.</summary>
    public class CloudSessionRevocation
    {
        public string UserPrincipalName { get; set; }
        /// <summary>The sessions that were open and are now ended (0 when there were none).</summary>
        public long Revoked { get; set; }

        internal static CloudSessionRevocation FromJson(JsonObject o)
        {
            return new CloudSessionRevocation
            {
                UserPrincipalName = o.Str("user_principal_name"),
                Revoked = o.Long("revoked"),
            };
        }
    }

    /// <summary>A user of the cloud tenant (Get-CloudUser); never a digest.</summary>
    public class CloudUser
    {
        public string UserPrincipalName { get; set; }
        public string DisplayName { get; set; }
        public bool Enabled { get; set; }
        /// <summary>synced or cloud.</summary>
        public string Origin { get; set; }
        public string SourceAnchor { get; set; }
        public DateTimeOffset? CreatedAt { get; set; }
        public bool HasPassword { get; set; }
        /// <summary>Where the current password came from: synced or cloud (admin reset, user change).</summary>
        public string PasswordSource { get; set; }
        public DateTimeOffset? PasswordChangedAt { get; set; }
        public DateTimeOffset? PasswordAppliedAt { get; set; }
        public bool ForceChangePasswordNextSignIn { get; set; }
        public DateTimeOffset? PasswordExpiresAt { get; set; }
        public DateTimeOffset? LockedUntil { get; set; }
        /// <summary>Risks against the current password (leaked_credentials); empty when none.</summary>
        public CloudUserRisk[] Risks { get; set; }

        internal static CloudUser FromJson(JsonObject o)
        {
            JsonObject p = o.Obj("password");
            string upn = o.Str("user_principal_name");
            string anchor = o.Str("source_anchor");
            var risks = new List<CloudUserRisk>();
            foreach (object r in o.Arr("risks"))
            {
                JsonObject ro = r as JsonObject;
                if (ro != null) risks.Add(CloudUserRisk.FromJson(ro, upn, anchor));
            }
            return new CloudUser
            {
                Risks = risks.ToArray(),
                UserPrincipalName = o.Str("user_principal_name"),
                DisplayName = o.Str("display_name"),
                Enabled = o.Bool("enabled"),
                Origin = o.Str("origin"),
                SourceAnchor = o.Str("source_anchor"),
                CreatedAt = o.Date("created_at"),
                HasPassword = p != null,
                PasswordSource = p == null ? null : p.Str("source"),
                PasswordChangedAt = p == null ? null : p.Date("changed_at"),
                PasswordAppliedAt = p == null ? null : p.Date("applied_at"),
                ForceChangePasswordNextSignIn = p != null && p.Bool("force_change_at_next_sign_in"),
                PasswordExpiresAt = p == null ? null : p.Date("expires_at"),
                LockedUntil = o.Date("locked_until"),
            };
        }
    }

/// <summary>A risk mark of a cloud user (Get-CloudUserRisk, CloudUser.Risks): its kind,
    /// when it was detected for the current password, and the breach count; never a hash.</summary>
    public class CloudUserRisk
    {
        public string UserPrincipalName { get; set; }
        public string SourceAnchor { get; set; }
        /// <summary>leaked_credentials: the synced password's NT hash is in the sync's leaked list.</summary>
        public string Kind { get; set; }
        public DateTimeOffset? DetectedAt { get; set; }
        /// <summary>Breaches the list counts for the hash; null for a plain list of hashes.</summary>
        public long? BreachCount { get; set; }

        /// <summary>From a user's "risks" entry (upn and anchor from the user) or a
        /// phs_cloud_risks entry (which carries both).</summary>
        internal static CloudUserRisk FromJson(JsonObject o, string upn = null, string anchor = null)
        {
            object count;
            bool hasCount = o.TryGetValue("breach_count", out count) && count != null;
            bool own = o.ContainsKey("user_principal_name");
            return new CloudUserRisk
            {
                UserPrincipalName = own ? o.Str("user_principal_name") : upn,
                SourceAnchor = own ? o.Str("source_anchor") : anchor,
                Kind = o.Str("kind"),
                DetectedAt = o.Date("detected_at"),
                BreachCount = hasCount ? o.Long("breach_count") : (long?)null,
            };
        }
    }

        /// <summary>One check of Test-PasswordHashSyncConnection.</summary>
    public class ConnectionCheck
    {
        /// <summary>config, fips, dc_reachable, ldap_bind, drsr_bind, replication_rights, tenant_reachable, token_valid, ca_trusted.</summary>
        public string Name { get; set; }
        /// <summary>passed, failed or skipped.</summary>
        public string Result { get; set; }
        public bool Passed { get { return Result == "passed"; } }
        public string Detail { get; set; }

        internal static ConnectionCheck FromJson(JsonObject o)
        {
            return new ConnectionCheck { Name = o.Str("name"), Result = o.Str("result"), Detail = o.Str("detail") };
        }
    }

    /// <summary>An account named by one finding of Test-PasswordHashSyncQuality. Never holds a hash.</summary>
    public class PasswordQualityFinding
    {
        /// <summary>empty_password, weak_password, leaked_password, shared_password,
        /// default_computer_password, lm_hash_present, password_not_required,
        /// reversible_encryption, aes_keys_missing, password_never_expires, admin_with_finding.</summary>
        public string Finding { get; set; }
        public string Title { get; set; }
        public string SamAccountName { get; set; }
        public string UserPrincipalName { get; set; }
        public string DistinguishedName { get; set; }
        public bool Enabled { get; set; }
        public bool Computer { get; set; }
        /// <summary>shared_password: the group of accounts sharing one password (1, 2, ...).</summary>
        public int? Group { get; set; }
        /// <summary>leaked_password: how often the password was seen in breaches (HIBP's count).</summary>
        public long? BreachCount { get; set; }
        /// <summary>admin_with_finding: the administrator's other findings.</summary>
        public string[] Findings { get; set; }

        internal static PasswordQualityFinding FromJson(JsonObject finding, JsonObject a)
        {
            List<string> others = new List<string>();
            foreach (object o in a.Arr("findings")) if (o is string) others.Add((string)o);
            return new PasswordQualityFinding
            {
                Finding = finding.Str("finding"),
                Title = finding.Str("title"),
                SamAccountName = a.Str("sam_account_name"),
                UserPrincipalName = a.Str("user_principal_name"),
                DistinguishedName = a.Str("distinguished_name"),
                Enabled = a.Bool("enabled"),
                Computer = a.Bool("computer"),
                Group = a.ContainsKey("group") ? (int?)a.Long("group") : null,
                BreachCount = a.ContainsKey("breach_count") && a["breach_count"] != null ? (long?)a.Long("breach_count") : null,
                Findings = others.ToArray(),
            };
        }
    }

    /// <summary>One finding's count (Test-PasswordHashSyncQuality -Summary).</summary>
    public class PasswordQualitySummary
    {
        public string Finding { get; set; }
        public string Title { get; set; }
        /// <summary>False when the list the finding needs was not given: Count 0 then means "not checked".</summary>
        public bool Checked { get; set; }
        public int Count { get; set; }
        /// <summary>shared_password: the number of groups.</summary>
        public int? Groups { get; set; }
        /// <summary>sync_scope or all_accounts.</summary>
        public string Scope { get; set; }
        public int AccountsAudited { get; set; }

        internal static PasswordQualitySummary FromJson(JsonObject report, JsonObject f)
        {
            return new PasswordQualitySummary
            {
                Finding = f.Str("finding"),
                Title = f.Str("title"),
                Checked = f.Bool("checked"),
                Count = (int)f.Long("count"),
                Groups = f.ContainsKey("groups") ? (int?)f.Long("groups") : null,
                Scope = report.Str("scope"),
                AccountsAudited = (int)report.Long("accounts_audited"),
            };
        }
    }

    /// <summary>An entry of the engine's event log (Microsoft's Directory Synchronization event IDs).</summary>
    public class SyncEvent
    {
        public DateTimeOffset? TimeCreated { get; set; }
        public int Id { get; set; }
        /// <summary>info, warning or error.</summary>
        public string Level { get; set; }
        public string Message { get; set; }
        public Hashtable Data { get; set; }

        internal static SyncEvent FromJson(JsonObject o)
        {
            return new SyncEvent
            {
                TimeCreated = o.Date("at"),
                Id = (int)o.Long("event_id"),
                Level = o.Str("level"),
                Message = o.Str("message"),
                Data = ToHashtable(o.Obj("data")),
            };
        }

        private static Hashtable ToHashtable(JsonObject o)
        {
            Hashtable h = new Hashtable(StringComparer.OrdinalIgnoreCase);
            if (o == null) return h;
            foreach (KeyValuePair<string, object> kv in o) h[kv.Key] = Plain(kv.Value);
            return h;
        }

        private static object Plain(object v)
        {
            JsonObject o = v as JsonObject;
            if (o != null) return ToHashtable(o);
            List<object> a = v as List<object>;
            if (a != null)
            {
                object[] r = new object[a.Count];
                for (int i = 0; i < a.Count; i++) r[i] = Plain(a[i]);
                return r;
            }
            return v;
        }
    }

    /// <summary>A scheduled Invoke-PasswordHashSync: a systemd timer, a cron entry or a Windows task.</summary>
    public class ScheduledSync
    {
        /// <summary>SystemdTimer, Cron or ScheduledTask.</summary>
        public string Kind { get; set; }
        public string Name { get; set; }
        public TimeSpan Interval { get; set; }
        public string ConfigPath { get; set; }
        public string RunAs { get; set; }
        public string Command { get; set; }
        public string[] Files { get; set; }
        /// <summary>The root folder the files are under ("/" normally).</summary>
        public string Root { get; set; }
    }
}
