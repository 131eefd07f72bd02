//! The state every handler shares: config, store, clock, throttles.

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::Semaphore;

use phsync_tenant::store::TenantStore;
use phsync_tenant::{Clock, CloudError, LocalTenant};

use crate::error::{ApiError, ApiResult};
use crate::throttle::Throttle;
use crate::ServiceConfig;

pub(crate) struct App {
    pub config: ServiceConfig,
    pub store: Arc<dyn TenantStore>,
    clock: Arc<dyn Clock>,
    pub per_user: Throttle,
    pub per_address: Throttle,
    pub password_checks: Arc<Semaphore>,
    pub started: Instant,
    pub inflight: Arc<AtomicUsize>,
}

/// What the routers are generic over.
pub(crate) type AppState = Arc<App>;

impl App {
    pub fn new(config: ServiceConfig, store: Arc<dyn TenantStore>, clock: Arc<dyn Clock>) -> Self {
        let checks = match config.max_concurrent_password_checks {
            0 => 2 * std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        };
        App {
            per_user: Throttle::new(config.sign_in_per_user_per_minute),
            per_address: Throttle::new(config.sign_in_per_address_per_minute),
            password_checks: Arc::new(Semaphore::new(checks)),
            config,
            store,
            clock,
            started: Instant::now(),
            inflight: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The tenant rules, acting as `actor` (audit log) for `source` (agents' scope).
    pub fn tenant(&self, actor: &str, source: Option<String>) -> LocalTenant {
        LocalTenant::new(self.store.clone(), self.clock.clone())
            .with_actor(actor)
            .with_source(source)
    }
}

/// Run tenant work on the blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, CloudError> + Send + 'static,
) -> ApiResult<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(ApiError::from),
        Err(e) => Err(ApiError::internal(e)),
    }
}
