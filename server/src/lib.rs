//! trustbridge-server: the Notary v1 HTTP API (reference §1, §3, §4, §6).

pub mod auth;
pub mod bridge;
pub mod config;
pub mod dev;
pub mod error;
pub mod handlers;
pub mod heap;
pub mod http;
pub mod import;
pub mod metrics;
pub mod migration;
pub mod mirror;
pub mod repo;
pub mod routes;
pub mod signer_link;
pub mod storage;
pub mod tls;
pub mod upload;
pub mod validation;
pub mod wire;

use std::sync::Arc;

pub use config::Config;
pub use error::{Error, StartError};

use crate::handlers::App;
use crate::metrics::Metrics;
use crate::repo::Repo;
use crate::signer_link::SignerLink;

/// The store, signer link, repository and bridge an offline `bridge` command works with.
fn offline_bridge(config: &Config) -> Result<(Repo, bridge::Bridge), Error> {
    let b = config
        .bridge
        .clone()
        .ok_or_else(|| StartError::Invalid("trustbridge.bridge is not configured".into()))?;
    let metrics = Metrics::new();
    let store = storage::open(&config.storage, true).map_err(StartError::from)?;
    let signer = SignerLink::new(&config.trust, metrics.clone())?;
    let repo = Repo::new(store.clone(), signer.clone(), config.renewal, config.cache);
    Ok((repo, bridge::Bridge::new(b, store, signer, metrics)))
}

/// `trustbridge-server import`: a repository's exported history into the configured store,
/// offline, through the same all-or-nothing path as the HTTP import (verified, one
/// transaction, the bridge's mirror jobs queued for the server to deliver).
pub async fn import(config: &Config, gun: &str, dir: &std::path::Path) -> Result<usize, Error> {
    let files = import::read_dir(dir)?;
    let store = storage::open(&config.storage, true).map_err(StartError::from)?;
    let signer = SignerLink::new(&config.trust, Metrics::new()).map_err(StartError::from)?;
    let repo = Repo::new(store, signer, config.renewal, config.cache)
        .with_mirror(config.bridge.as_ref().map(|b| b.on_expiry));
    repo.import(gun, files).await
}

/// `bridge backfill`: mirror every stored target of GUNs starting with `prefix`.
pub async fn backfill(
    config: &Config,
    prefix: &str,
    redeliver: bool,
) -> Result<bridge::backfill::Report, Error> {
    let (repo, bridge) = offline_bridge(config)?;
    bridge::backfill::backfill(&repo, &bridge, prefix, redeliver).await
}

/// `bridge verify`: one reconcile pass over GUNs starting with `prefix`, then deliver what it
/// queued (as backfill does); returns the pass's findings and the delivery counts.
pub async fn verify(
    config: &Config,
    prefix: &str,
) -> Result<(bridge::reconcile::Report, bridge::backfill::Report), Error> {
    let (repo, bridge) = offline_bridge(config)?;
    let found = bridge.reconcile(&repo, prefix).await?;
    let delivered = bridge::backfill::deliver_due(&bridge, repo.store().as_ref()).await?;
    Ok((found, delivered))
}

/// Listen on `config.http_addr` and serve until `shutdown` completes. `ready` receives the
/// bound address.
pub async fn run(
    config: &Config,
    shutdown: impl std::future::Future<Output = ()>,
    ready: impl FnOnce(std::net::SocketAddr),
) -> Result<(), Error> {
    let metrics = Metrics::new();
    let store = storage::open(&config.storage, false).map_err(StartError::from)?;
    let signer = SignerLink::new(&config.trust, metrics.clone())?;
    // With several signer endpoints, their health is watched between requests.
    let signer_health = signer.watch_health();
    let auth = config
        .auth
        .as_ref()
        .map(|a| -> Result<auth::TokenAuth, StartError> {
            let pem = std::fs::read(&a.rootcertbundle)
                .map_err(|e| StartError::io(a.rootcertbundle.display(), e))?;
            Ok(auth::TokenAuth {
                realm: a.realm.clone(),
                service: a.service.clone(),
                issuer: a.issuer.clone(),
                roots: auth::jwt::Roots::from_pem(&pem)?,
                autoredirect: a.autoredirect,
            })
        })
        .transpose()?;
    let issuer = match (&config.token_issuer, &config.auth) {
        (Some(ic), Some(a)) => Some(
            auth::issuer::Issuer::new(ic.clone(), &a.service, &a.issuer, signer.clone())
                .map_err(StartError::from)?,
        ),
        (Some(_), None) => {
            return Err(StartError::Invalid(
                "trustbridge.token_issuer needs auth.type \"token\" with its options".into(),
            )
            .into());
        }
        _ => None,
    };
    let bridge = config.bridge.as_ref().map(|b| {
        Arc::new(bridge::Bridge::new(
            b.clone(),
            store.clone(),
            signer.clone(),
            metrics.clone(),
        ))
    });
    let bridge_worker = bridge.clone().map(|b| tokio::spawn(b.run()));
    let control = Arc::new(migration::ControlRoom::new(
        store.clone(),
        config.migration.clone(),
        metrics.clone(),
        bridge.is_some(),
        config.bridge.as_ref().is_some_and(|b| b.notation.is_some()),
    ));
    let app = Arc::new(App {
        control: control.clone(),
        bridge,
        auth,
        issuer,
        repo: Repo::new(store, signer, config.renewal, config.cache)
            .with_mirror(config.bridge.as_ref().map(|b| b.on_expiry)),
        metrics,
        caching: config.caching,
        gun_prefixes: config.gun_prefixes.clone(),
    });
    // Another replica's commit drops our cached view of that GUN (PostgreSQL).
    {
        let weak = Arc::downgrade(&app);
        app.repo.store().watch(Arc::new(move |gun| {
            if let Some(app) = weak.upgrade() {
                app.repo.forget(gun);
            }
        }));
    }
    // Background renewal of what nobody reads.
    let sweeper = {
        let app = app.clone();
        let every = config.renewal.sweep;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let (renewed, failed) = app.repo.sweep().await;
                if renewed + failed > 0 {
                    tracing::info!(renewed, failed, "renewal sweep");
                }
            }
        })
    };
    // GUNs stored before the control room's tables existed (or written by notary-server on
    // the same database) get their trust rows, in the background.
    let adopter = {
        let app = app.clone();
        tokio::spawn(async move {
            match app.repo.adopt_trust().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    guns = n,
                    "migration: adopted stored repositories into the status tables"
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "migration: adopting stored repositories failed")
                }
            }
        })
    };
    // The summarizer: the control room's rows of GUNs that writes marked.
    let summarizer = {
        let app = app.clone();
        let every = std::time::Duration::from_millis(
            (config.migration.summary_seconds.max(0.05) * 1000.0) as u64,
        );
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                if let Err(e) = app.repo.summarize_dirty().await {
                    tracing::warn!(error = %e, "migration: summarizing failed");
                }
            }
        })
    };
    // DCT usage, counted in memory on the read path, written in batches.
    let flusher = {
        let control = control.clone();
        let every = std::time::Duration::from_secs(config.migration.usage_flush_seconds.max(1));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                // At the interval, or earlier when many GUNs were read (bounded memory).
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = control.usage.full() => {}
                }
                let c = control.clone();
                let _ = tokio::task::spawn_blocking(move || c.flush_usage()).await;
            }
        })
    };
    // The expiry watchdog: shortly after start, then every watchdog_seconds.
    let watchdog = {
        let control = control.clone();
        let every = std::time::Duration::from_secs(config.migration.watchdog_seconds.max(1));
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let c = control.clone();
                let _ = tokio::task::spawn_blocking(move || c.watch_expiry()).await;
            }
        })
    };
    // The reconciler, on the replica that holds the bridge lease.
    let reconciler = match (
        &app.bridge,
        config.bridge.as_ref().and_then(|b| b.reconcile_every),
    ) {
        (Some(bridge), Some(every)) => {
            let (app, bridge) = (app.clone(), bridge.clone());
            Some(tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    if !app.repo.store().bridge_lease() {
                        continue;
                    }
                    if let Err(e) = bridge.reconcile(&app.repo, "").await {
                        tracing::warn!(error = %e, "bridge: reconciling failed");
                    }
                }
            }))
        }
        _ => None,
    };
    // A renewed Notation leaf: every tag is signed again with the new chain.
    let chain_watch = app.bridge.clone().map(|bridge| {
        let app = app.clone();
        tokio::spawn(async move { bridge.follow_notation_chain(&app.repo).await })
    });
    let router = axum::Router::new()
        .fallback(handlers::dispatch)
        .with_state(app);
    let tls = config
        .tls
        .as_ref()
        .map(|t| http::tls_acceptor(t, config.client_ca_file.as_deref()))
        .transpose()?;
    let addr = if config.http_addr.starts_with(':') {
        format!("0.0.0.0{}", config.http_addr)
    } else {
        config.http_addr.clone()
    };
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|e| StartError::io(format!("cannot listen on {addr}"), e))?;
    let local = listener
        .local_addr()
        .map_err(|e| StartError::io("the listener's address", e))?;
    tracing::info!(addr = %local, tls = tls.is_some(), "trustbridge-server serving");
    ready(local);
    let res = http::serve(listener, tls, router, config.http_limits, shutdown).await;
    flusher.abort();
    watchdog.abort();
    adopter.abort();
    summarizer.abort();
    // What was counted since the last flush is not lost on a clean stop.
    let _ = tokio::task::spawn_blocking(move || control.flush_usage()).await;
    sweeper.abort();
    if let Some(h) = signer_health {
        h.abort();
    }
    if let Some(w) = chain_watch {
        w.abort();
    }
    if let Some(r) = reconciler {
        r.abort();
    }
    if let Some(w) = bridge_worker {
        w.abort();
    }
    res
}
