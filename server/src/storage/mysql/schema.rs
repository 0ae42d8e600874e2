//! The tables in MySQL/MariaDB: notary-server's own (`migrations/server/mysql` 0001–0005 as
//! they leave a database: `tuf_files` with `sha256`, `change_category`, `changefeed`), created
//! when missing, then ours. Each statement runs on its own (MySQL takes one per call); ours
//! compare GUNs bytewise (`utf8mb4_bin`), as the other stores do, so a prefix is a range.

/// notary's tables, exactly as its migrations make them.
pub(super) const NOTARY: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS `tuf_files` (
  `id` int(11) NOT NULL AUTO_INCREMENT,
  `created_at` timestamp NULL DEFAULT NULL,
  `updated_at` timestamp NULL DEFAULT NULL,
  `deleted_at` timestamp NULL DEFAULT NULL,
  `gun` varchar(255) NOT NULL,
  `role` varchar(255) NOT NULL,
  `version` int(11) NOT NULL,
  `data` longblob NOT NULL,
  `sha256` char(64) DEFAULT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `gun` (`gun`,`role`,`version`),
  INDEX `sha256` (`sha256`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8",
    "CREATE TABLE IF NOT EXISTS `change_category` (
  `category` VARCHAR(20) NOT NULL,
  PRIMARY KEY (`category`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8",
    "INSERT IGNORE INTO `change_category` VALUES ('update'), ('deletion')",
    "CREATE TABLE IF NOT EXISTS `changefeed` (
  `id` int(11) NOT NULL AUTO_INCREMENT,
  `created_at` timestamp DEFAULT CURRENT_TIMESTAMP,
  `gun` varchar(255) NOT NULL,
  `version` int(11) NOT NULL,
  `sha256` CHAR(64) DEFAULT NULL,
  `category` VARCHAR(20) NOT NULL DEFAULT 'update',
  PRIMARY KEY (`id`),
  FOREIGN KEY (`category`) REFERENCES `change_category` (`category`),
  INDEX `idx_changefeed_gun` (`gun`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8",
];

/// Ours: tombstones, the bridge outbox and findings, the renewal schedule, the control room.
pub(super) const OURS: &[&str] = &[
    // notary hard-deletes a GUN; its rows are kept here, never served (tuf_files' columns,
    // without its unique key: a GUN may be deleted, published again and deleted again).
    "CREATE TABLE IF NOT EXISTS `tuf_files_deleted` (
  `id` int(11) NOT NULL,
  `created_at` timestamp NULL DEFAULT NULL,
  `updated_at` timestamp NULL DEFAULT NULL,
  `deleted_at` timestamp NULL DEFAULT NULL,
  `gun` varchar(255) NOT NULL,
  `role` varchar(255) NOT NULL,
  `version` int(11) NOT NULL,
  `data` longblob NOT NULL,
  `sha256` char(64) DEFAULT NULL,
  INDEX `tuf_files_deleted_gun` (`gun`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8",
    "CREATE TABLE IF NOT EXISTS bridge_jobs (
  id bigint NOT NULL AUTO_INCREMENT PRIMARY KEY, created_at bigint NOT NULL,
  updated_at bigint NOT NULL, gun varchar(255) NOT NULL, tag varchar(255) NOT NULL,
  digest char(64) NOT NULL, role varchar(255) NOT NULL, action varchar(10) NOT NULL DEFAULT 'sign',
  state varchar(20) NOT NULL DEFAULT 'pending', attempts bigint NOT NULL DEFAULT 0,
  last_error text NULL, next_at bigint NOT NULL, signers text NOT NULL,
  INDEX idx_bridge_jobs_due (state, next_at), INDEX idx_bridge_jobs_tag (gun, tag, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
    "CREATE TABLE IF NOT EXISTS bridge_checks (
  gun varchar(255) NOT NULL, tag varchar(255) NOT NULL, digest char(64) NOT NULL,
  verified_at bigint NULL, registry_digest char(64) NULL, drift boolean NOT NULL DEFAULT false,
  error text NULL, checked_at bigint NOT NULL, expires bigint NULL, PRIMARY KEY (gun, tag),
  INDEX idx_bridge_checks_drift (drift), INDEX idx_bridge_checks_expires (expires)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
    "CREATE TABLE IF NOT EXISTS renewals (
  gun varchar(255) NOT NULL PRIMARY KEY, timestamp_expires bigint NULL, snapshot_expires bigint NULL,
  INDEX idx_renewals_timestamp (timestamp_expires), INDEX idx_renewals_snapshot (snapshot_expires)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
    "CREATE TABLE IF NOT EXISTS trust_tags (
  gun varchar(255) NOT NULL, tag varchar(255) NOT NULL, digest char(64) NOT NULL,
  role varchar(255) NOT NULL, signers text NOT NULL, expires bigint NULL, PRIMARY KEY (gun, tag)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
    "CREATE TABLE IF NOT EXISTS trust_roles (
  gun varchar(255) NOT NULL, role varchar(255) NOT NULL, expires bigint NOT NULL,
  PRIMARY KEY (gun, role), INDEX idx_trust_roles_expires (expires)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
    "CREATE TABLE IF NOT EXISTS migration_guns (
  gun varchar(255) NOT NULL PRIMARY KEY, tags bigint NOT NULL, mirrored bigint NOT NULL,
  verified bigint NOT NULL, queued bigint NOT NULL, dead bigint NOT NULL, drift bigint NOT NULL,
  expires bigint NULL, last_read bigint NULL, updated_at bigint NOT NULL,
  INDEX idx_migration_guns_read (last_read)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
    "CREATE TABLE IF NOT EXISTS dct_usage (
  gun varchar(255) NOT NULL, day bigint NOT NULL, client varchar(32) NOT NULL,
  version varchar(64) NOT NULL, `reads` bigint NOT NULL, last_seen bigint NOT NULL,
  PRIMARY KEY (gun, day, client, version), INDEX idx_dct_usage_day (day)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
    "CREATE TABLE IF NOT EXISTS dct_read_only (
  gun varchar(255) NOT NULL PRIMARY KEY, since bigint NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
    "CREATE TABLE IF NOT EXISTS migration_dirty (
  gun varchar(255) NOT NULL PRIMARY KEY, trust bigint NOT NULL, seq bigint NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
    "CREATE TABLE IF NOT EXISTS migration_totals (
  shard bigint NOT NULL PRIMARY KEY, guns bigint NOT NULL, tags bigint NOT NULL,
  mirrored bigint NOT NULL, verified bigint NOT NULL, queued bigint NOT NULL, dead bigint NOT NULL,
  drift bigint NOT NULL, ready_guns bigint NOT NULL
) ENGINE=InnoDB",
    // The MySQL store is new: no summaries predate the shards, which all start at zero.
    "INSERT IGNORE INTO migration_totals VALUES (0, 0, 0, 0, 0, 0, 0, 0, 0),
  (1, 0, 0, 0, 0, 0, 0, 0, 0), (2, 0, 0, 0, 0, 0, 0, 0, 0), (3, 0, 0, 0, 0, 0, 0, 0, 0),
  (4, 0, 0, 0, 0, 0, 0, 0, 0), (5, 0, 0, 0, 0, 0, 0, 0, 0), (6, 0, 0, 0, 0, 0, 0, 0, 0),
  (7, 0, 0, 0, 0, 0, 0, 0, 0), (8, 0, 0, 0, 0, 0, 0, 0, 0), (9, 0, 0, 0, 0, 0, 0, 0, 0),
  (10, 0, 0, 0, 0, 0, 0, 0, 0), (11, 0, 0, 0, 0, 0, 0, 0, 0), (12, 0, 0, 0, 0, 0, 0, 0, 0),
  (13, 0, 0, 0, 0, 0, 0, 0, 0), (14, 0, 0, 0, 0, 0, 0, 0, 0), (15, 0, 0, 0, 0, 0, 0, 0, 0)",
];

/// Held (a named lock) while the schema is created, so replicas starting together take turns.
pub(super) const SCHEMA_LOCK: &str = "trustbridge:schema";

/// Held by the replica that runs the bridge, on a connection of its own: it passes to another
/// replica when that connection goes.
pub(super) const BRIDGE_LOCK: &str = "trustbridge:bridge";

/// The named lock of one GUN's writers (MySQL names are at most 64 characters; a GUN may be
/// 255): `trustbridge:gun:` and 32 hex digits of its SHA-256.
pub(super) fn gun_lock(gun: &str) -> String {
    format!(
        "trustbridge:gun:{}",
        &crate::storage::sha256_hex(gun.as_bytes())[..32]
    )
}
