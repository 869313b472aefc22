//! Migration sets published through the API: each set once under its digest, its files
//! (bytes as hex, with their SHA-256 as published), and tags naming a set, every move of a
//! tag kept with who moved it and when, and written to the audit.

use super::{Store, StoreError, get, now_ms, rollouts::insert_audit};

/// A set to store, validated and digested by the caller.
#[derive(Debug, Clone)]
pub(crate) struct NewSet {
    /// Its digest: 64 lower-case hex characters, as Plan reports it.
    pub(crate) digest: String,
    /// Its format's name as the configuration spells it (`sqlx`, `flyway`, …), detected.
    pub(crate) format: String,
    /// The dialect it was validated with (`postgres`, `mysql`, `sqlite`).
    pub(crate) dialect: String,
    /// Its migrations, as the set counts them.
    pub(crate) migrations: i64,
}

/// One file of a stored set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredFile {
    /// Its path inside the set, `/`-separated and relative (`1_init.up.sql`, `2_x/up.sql`).
    pub(crate) path: String,
    /// Its bytes as read back from the store.
    pub(crate) bytes: Vec<u8>,
    /// The SHA-256 recorded when it was published, lower-case hex.
    pub(crate) sha256: String,
}

/// A stored set as listed.
#[derive(Debug, Clone)]
pub(crate) struct StoredSet {
    /// Its digest.
    pub(crate) digest: String,
    /// Its format's name.
    pub(crate) format: String,
    /// The dialect it was validated with.
    pub(crate) dialect: String,
    /// Its files' total size in bytes.
    pub(crate) bytes: i64,
    /// Its number of files.
    pub(crate) file_count: i64,
    /// Its number of migrations.
    pub(crate) migrations: i64,
    /// Who published it first (the audit's caller).
    pub(crate) published_by: String,
    /// When, in ms since the Unix epoch.
    pub(crate) published_at: i64,
    /// The tags naming it, sorted.
    pub(crate) tags: Vec<String>,
}

/// What moving a tag did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TagMove {
    /// The tag names the set now; it named `from` before (none: a new tag).
    Moved {
        /// The digest it named before.
        from: Option<String>,
    },
    /// No set has the digest: nothing changed.
    NoSet,
}

/// The audit's method names for set changes (audit entries of no rollout, empty id).
const PUBLISH: &str = "avocet.v1.Sets/PublishSet";

const SET_COLUMNS: &str =
    "digest, format, dialect, bytes, file_count, migrations, published_by, published_at";

impl Store {
    /// Stores `set` and `files` unless a set with its digest is stored already, then moves
    /// `tag` (if any) to it; with an audit entry naming `caller` for the publish and one
    /// for the tag's move, all in one transaction. True when the set was new.
    ///
    /// # Errors
    /// [`StoreError::Query`] when a write fails (nothing is stored then).
    pub(crate) async fn publish_set(
        &self,
        set: &NewSet,
        files: &[StoredFile],
        tag: Option<&str>,
        caller: &str,
    ) -> Result<bool, StoreError> {
        const CTX: &str = "storing a published set";
        let mut tx = self.pool.begin().await.map_err(StoreError::query(CTX))?;
        let at = now_ms();
        let bytes: usize = files.iter().map(|f| f.bytes.len()).sum();
        let inserted = sqlx::query(&format!(
            "INSERT INTO published_sets ({SET_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (digest) DO NOTHING"
        ))
        .bind(&set.digest)
        .bind(&set.format)
        .bind(&set.dialect)
        .bind(bytes as i64)
        .bind(files.len() as i64)
        .bind(set.migrations)
        .bind(caller)
        .bind(at)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query(CTX))?
        .rows_affected()
            == 1;
        if inserted {
            for f in files {
                sqlx::query(
                    "INSERT INTO published_set_files (set_digest, path, bytes, sha256, content) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&set.digest)
                .bind(&f.path)
                .bind(f.bytes.len() as i64)
                .bind(&f.sha256)
                .bind(hex::encode(&f.bytes))
                .execute(&mut *tx)
                .await
                .map_err(StoreError::query(CTX))?;
            }
            let detail = format!(
                "set {} ({}, {}, {} files, {bytes} bytes, {} migrations)",
                set.digest,
                set.format,
                set.dialect,
                files.len(),
                set.migrations
            );
            insert_audit(&mut tx, "", at, PUBLISH, caller, &detail).await?;
        }
        if let Some(tag) = tag {
            move_tag(&mut tx, tag, &set.digest, caller, at).await?;
        }
        tx.commit().await.map_err(StoreError::query(CTX))?;
        Ok(inserted)
    }

    /// Points tag `name` at the stored set `digest`, recording the move (with the digest it
    /// named before) in the tags' history and the audit, naming `caller`.
    ///
    /// # Errors
    /// [`StoreError::Query`] when a read or write fails (nothing changes then).
    pub(crate) async fn tag_set(
        &self,
        name: &str,
        digest: &str,
        caller: &str,
    ) -> Result<TagMove, StoreError> {
        const CTX: &str = "moving a set's tag";
        let mut tx = self.pool.begin().await.map_err(StoreError::query(CTX))?;
        if !set_exists(&mut tx, digest, CTX).await? {
            return Ok(TagMove::NoSet);
        }
        let from = move_tag(&mut tx, name, digest, caller, now_ms()).await?;
        tx.commit().await.map_err(StoreError::query(CTX))?;
        Ok(TagMove::Moved { from })
    }

    /// The digest tag `name` names, if the tag exists.
    ///
    /// # Errors
    /// [`StoreError::Query`] when the read fails.
    pub(crate) async fn tagged_set(&self, name: &str) -> Result<Option<String>, StoreError> {
        const CTX: &str = "reading a set's tag";
        let row = sqlx::query("SELECT set_digest FROM set_tags WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::query(CTX))?;
        row.map(|r| get::<String>(&r, 0, CTX)).transpose()
    }

    /// The stored set `digest` with its tags, if stored.
    ///
    /// # Errors
    /// [`StoreError::Query`] when the read fails.
    pub(crate) async fn published_set(
        &self,
        digest: &str,
    ) -> Result<Option<StoredSet>, StoreError> {
        let sets = self
            .read_sets(
                &format!("SELECT {SET_COLUMNS} FROM published_sets WHERE digest = $1"),
                Some(digest),
            )
            .await?;
        Ok(sets.into_iter().next())
    }

    /// Every stored set with its tags, newest first.
    ///
    /// # Errors
    /// [`StoreError::Query`] when the read fails.
    pub(crate) async fn published_sets(&self) -> Result<Vec<StoredSet>, StoreError> {
        self.read_sets(
            &format!("SELECT {SET_COLUMNS} FROM published_sets ORDER BY published_at DESC, digest"),
            None,
        )
        .await
    }

    /// The files of stored set `digest`, sorted by path, as stored (the caller checks
    /// their SHA-256).
    ///
    /// # Errors
    /// [`StoreError::Query`] when the read fails; [`StoreError::Corrupt`] for content that
    /// is not hex (the store was edited by hand).
    pub(crate) async fn set_files(&self, digest: &str) -> Result<Vec<StoredFile>, StoreError> {
        const CTX: &str = "reading a published set's files";
        let rows = sqlx::query(
            "SELECT path, sha256, content FROM published_set_files WHERE set_digest = $1 \
             ORDER BY path",
        )
        .bind(digest)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query(CTX))?;
        rows.iter()
            .map(|r| {
                let path: String = get(r, 0, CTX)?;
                let content: String = get(r, 2, CTX)?;
                let bytes = hex::decode(&content).map_err(|e| StoreError::Corrupt {
                    context: CTX,
                    message: format!("set {digest}, file {path}: {e}"),
                })?;
                Ok(StoredFile {
                    path,
                    bytes,
                    sha256: get(r, 1, CTX)?,
                })
            })
            .collect()
    }

    async fn read_sets(
        &self,
        sql: &str,
        digest: Option<&str>,
    ) -> Result<Vec<StoredSet>, StoreError> {
        const CTX: &str = "reading published sets";
        let mut query = sqlx::query(sql);
        if let Some(d) = digest {
            query = query.bind(d);
        }
        let rows = query
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query(CTX))?;
        let tag_rows = sqlx::query("SELECT name, set_digest FROM set_tags ORDER BY name")
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query(CTX))?;
        let mut tags: Vec<(String, String)> = Vec::with_capacity(tag_rows.len());
        for r in &tag_rows {
            tags.push((get(r, 0, CTX)?, get(r, 1, CTX)?));
        }
        rows.iter()
            .map(|r| {
                let digest: String = get(r, 0, CTX)?;
                Ok(StoredSet {
                    tags: tags
                        .iter()
                        .filter(|(_, d)| *d == digest)
                        .map(|(n, _)| n.clone())
                        .collect(),
                    digest,
                    format: get(r, 1, CTX)?,
                    dialect: get(r, 2, CTX)?,
                    bytes: get(r, 3, CTX)?,
                    file_count: get(r, 4, CTX)?,
                    migrations: get(r, 5, CTX)?,
                    published_by: get(r, 6, CTX)?,
                    published_at: get(r, 7, CTX)?,
                })
            })
            .collect()
    }
}

/// Whether set `digest` is stored, read in `tx`.
///
/// # Errors
/// [`StoreError::Query`] when the read fails, with `ctx` as its context.
async fn set_exists(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    digest: &str,
    ctx: &'static str,
) -> Result<bool, StoreError> {
    Ok(
        sqlx::query("SELECT 1 FROM published_sets WHERE digest = $1")
            .bind(digest)
            .fetch_optional(&mut **tx)
            .await
            .map_err(StoreError::query(ctx))?
            .is_some(),
    )
}

/// Points `name` at `digest` inside `tx`, with its history row and audit entry; the digest
/// it named before.
async fn move_tag(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    name: &str,
    digest: &str,
    caller: &str,
    at: i64,
) -> Result<Option<String>, StoreError> {
    const CTX: &str = "moving a set's tag";
    let from: Option<String> = sqlx::query("SELECT set_digest FROM set_tags WHERE name = $1")
        .bind(name)
        .fetch_optional(&mut **tx)
        .await
        .map_err(StoreError::query(CTX))?
        .map(|r| get(&r, 0, CTX))
        .transpose()?;
    if from.as_deref() == Some(digest) {
        return Ok(from);
    }
    sqlx::query(
        "INSERT INTO set_tags (name, set_digest, moved_by, moved_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (name) DO UPDATE SET set_digest = excluded.set_digest, \
         moved_by = excluded.moved_by, moved_at = excluded.moved_at",
    )
    .bind(name)
    .bind(digest)
    .bind(caller)
    .bind(at)
    .execute(&mut **tx)
    .await
    .map_err(StoreError::query(CTX))?;
    sqlx::query(
        "INSERT INTO set_tag_moves (name, at, from_digest, to_digest, moved_by) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(name)
    .bind(at)
    .bind(from.clone())
    .bind(digest)
    .bind(caller)
    .execute(&mut **tx)
    .await
    .map_err(StoreError::query(CTX))?;
    let detail = format!(
        "tag {name}: {} -> {digest}",
        from.as_deref().unwrap_or("(new)")
    );
    insert_audit(tx, "", at, "avocet.v1.Sets/TagSet", caller, &detail).await?;
    Ok(from)
}

/// Why a stored set was not deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Deletion {
    /// Deleted, with the tags that named it.
    Deleted {
        /// The tags removed with it.
        tags: Vec<String>,
    },
    /// No set has the digest.
    NoSet,
    /// An unfinished rollout (pending, running, paused or interrupted) pinned it.
    InUse {
        /// The rollout's id.
        rollout: String,
    },
}

impl Store {
    /// Deletes stored set `digest`, its files and the tags naming it, with an audit entry
    /// naming `caller`, in one transaction, unless an unfinished rollout pinned it.
    ///
    /// # Errors
    /// [`StoreError::Query`] when a read or write fails (nothing changes then);
    /// [`StoreError::Corrupt`] for a rollout whose stored request does not decode.
    pub(crate) async fn delete_set(
        &self,
        digest: &str,
        caller: &str,
    ) -> Result<Deletion, StoreError> {
        const CTX: &str = "deleting a published set";
        let mut tx = self.pool.begin().await.map_err(StoreError::query(CTX))?;
        if !set_exists(&mut tx, digest, CTX).await? {
            return Ok(Deletion::NoSet);
        }
        let rows = sqlx::query(
            "SELECT id, spec FROM rollouts \
             WHERE state IN ('pending', 'running', 'paused', 'interrupted') ORDER BY id",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(StoreError::query(CTX))?;
        for r in &rows {
            let spec: String = get(r, 1, CTX)?;
            let spec: serde_json::Value =
                serde_json::from_str(&spec).map_err(StoreError::corrupt(CTX))?;
            if spec["set_digest"].as_str() == Some(digest) {
                return Ok(Deletion::InUse {
                    rollout: get(r, 0, CTX)?,
                });
            }
        }
        let tag_rows = sqlx::query("SELECT name FROM set_tags WHERE set_digest = $1 ORDER BY name")
            .bind(digest)
            .fetch_all(&mut *tx)
            .await
            .map_err(StoreError::query(CTX))?;
        let tags = tag_rows
            .iter()
            .map(|r| get::<String>(r, 0, CTX))
            .collect::<Result<Vec<_>, _>>()?;
        for sql in [
            "DELETE FROM set_tags WHERE set_digest = $1",
            "DELETE FROM published_sets WHERE digest = $1",
        ] {
            sqlx::query(sql)
                .bind(digest)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::query(CTX))?;
        }
        let detail = format!("set {digest} deleted, with tags [{}]", tags.join(", "));
        end_deletion(tx, digest, caller, &detail, CTX).await?;
        Ok(Deletion::Deleted { tags })
    }
}

/// Ends the deletion of set `digest` begun in `tx` (its `published_sets` row is gone):
/// deletes its files, audits the deletion as `DeleteSet` by `caller` with `detail`, and
/// commits. Used by `DeleteSet` and by `set_retention`'s collection alike.
///
/// # Errors
/// [`StoreError::Query`] (with `ctx`) when the store refuses it; nothing is kept then.
pub(super) async fn end_deletion(
    mut tx: sqlx::Transaction<'_, sqlx::Any>,
    digest: &str,
    caller: &str,
    detail: &str,
    ctx: &'static str,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM published_set_files WHERE set_digest = $1")
        .bind(digest)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query(ctx))?;
    insert_audit(
        &mut tx,
        "",
        now_ms(),
        "avocet.v1.Sets/DeleteSet",
        caller,
        detail,
    )
    .await?;
    tx.commit().await.map_err(StoreError::query(ctx))
}
