//! `avocet.v1.Sets` for [`Client`]: publishing a set (a directory's files, or one tar
//! archive, streamed in chunks), tags, listing and reading one back.

use std::path::Path;

use crate::{Client, ClientError, pb};

/// Bytes of one `PublishSet` chunk: well under the daemon's 4 MiB message limit.
pub const CHUNK_BYTES: usize = 1 << 20;

/// The files of a set's directory as `PublishSet` sends them: every regular file in `dir`
/// and in each directory directly inside it (diesel keeps a migration in one), as
/// `/`-separated relative paths, sorted; names starting with `.` are left out.
///
/// # Errors
/// The first directory or file that cannot be read, naming it.
pub fn read_set_dir(dir: &Path) -> Result<Vec<(String, Vec<u8>)>, ClientError> {
    let mut files = Vec::new();
    read_into(dir, "", &mut files)?;
    files.sort();
    Ok(files)
}

fn read_into(
    dir: &Path,
    prefix: &str,
    files: &mut Vec<(String, Vec<u8>)>,
) -> Result<(), ClientError> {
    let io = |path: &Path, source: std::io::Error| ClientError::SetFile {
        path: path.to_owned(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
        let entry = entry.map_err(|e| io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        let rel = format!("{prefix}{name}");
        if path.is_dir() {
            if prefix.is_empty() {
                read_into(&path, &format!("{rel}/"), files)?;
            }
        } else if path.is_file() {
            files.push((rel, std::fs::read(&path).map_err(|e| io(&path, e))?));
        }
    }
    Ok(())
}

impl Client {
    /// `Sets.PublishSet`: streams `header`, then `files` (path, bytes) in chunks of
    /// [`CHUNK_BYTES`]; answers the set's digest (Plan's digest for the same directory).
    ///
    /// # Errors
    /// [`ClientError::Status`]: `INVALID_ARGUMENT` (`SET_REFUSED`) for a set that does not
    /// load or a refused path, naming the file; `RESOURCE_EXHAUSTED` (`SET_TOO_LARGE`)
    /// above `max_set_bytes` or `max_set_files`; `PERMISSION_DENIED` below `operator`.
    pub async fn publish_set(
        &mut self,
        header: pb::PublishSetHeader,
        files: Vec<(String, Vec<u8>)>,
    ) -> Result<pb::PublishSetResponse, ClientError> {
        use pb::publish_set_request::Item;
        let mut messages = vec![pb::PublishSetRequest {
            item: Some(Item::Header(header)),
        }];
        for (path, bytes) in files {
            let mut chunks = bytes.chunks(CHUNK_BYTES).peekable();
            if chunks.peek().is_none() {
                messages.push(pb::PublishSetRequest {
                    item: Some(Item::File(pb::SetFileChunk {
                        path: path.clone(),
                        data: Vec::new(),
                    })),
                });
            }
            for chunk in chunks {
                messages.push(pb::PublishSetRequest {
                    item: Some(Item::File(pb::SetFileChunk {
                        path: path.clone(),
                        data: chunk.to_vec(),
                    })),
                });
            }
        }
        let stream = futures::stream::iter(messages);
        Ok(self.sets.publish_set(stream).await?.into_inner())
    }

    /// `Sets.PublishSet` with the set as one tar archive (ustar, pax or GNU; not
    /// compressed): streams `header`, then `archive` in chunks of [`CHUNK_BYTES`]. The
    /// daemon reads the archive's regular files as the set's files (a leading `./` dropped,
    /// directories skipped), so the digest is that of the same files sent by
    /// [`Client::publish_set`].
    ///
    /// # Errors
    /// As [`Client::publish_set`]; also `INVALID_ARGUMENT` (`SET_REFUSED`) for an archive
    /// that does not read or that holds a link, a device or a FIFO, naming the entry.
    pub async fn publish_tar(
        &mut self,
        header: pb::PublishSetHeader,
        archive: Vec<u8>,
    ) -> Result<pb::PublishSetResponse, ClientError> {
        use pb::publish_set_request::Item;
        let mut messages = vec![pb::PublishSetRequest {
            item: Some(Item::Header(header)),
        }];
        messages.extend(
            archive
                .chunks(CHUNK_BYTES)
                .map(|chunk| pb::PublishSetRequest {
                    item: Some(Item::Tar(chunk.to_vec())),
                }),
        );
        let stream = futures::stream::iter(messages);
        Ok(self.sets.publish_set(stream).await?.into_inner())
    }

    /// `Sets.TagSet`: points tag `name` at `set` (a digest or another tag).
    ///
    /// # Errors
    /// `NOT_FOUND` (`SET_NOT_FOUND`) for an unknown set; `INVALID_ARGUMENT` for a bad name.
    pub async fn tag_set(
        &mut self,
        name: &str,
        set: &str,
    ) -> Result<pb::TagSetResponse, ClientError> {
        let req = pb::TagSetRequest {
            name: name.into(),
            set: set.into(),
        };
        Ok(self.sets.tag_set(req).await?.into_inner())
    }

    /// `Sets.ListSets`: every stored set, newest first.
    ///
    /// # Errors
    /// [`ClientError::Status`] when the daemon refuses or its store fails.
    pub async fn list_sets(&mut self) -> Result<Vec<pb::SetInfo>, ClientError> {
        let req = pb::ListSetsRequest {};
        Ok(self.sets.list_sets(req).await?.into_inner().sets)
    }

    /// `Sets.GetSet`: a stored set's manifest, with every file's bytes when `files`.
    ///
    /// # Errors
    /// `NOT_FOUND` for an unknown set; `DATA_LOSS` (`SET_TAMPERED`) when a stored file no
    /// longer matches its SHA-256.
    pub async fn get_set(
        &mut self,
        set: &str,
        files: bool,
    ) -> Result<pb::GetSetResponse, ClientError> {
        let req = pb::GetSetRequest {
            set: set.into(),
            include_files: files,
        };
        Ok(self.sets.get_set(req).await?.into_inner())
    }

    /// `Sets.DeleteSet`: deletes a stored set (a digest or a tag) and its tags.
    ///
    /// # Errors
    /// `NOT_FOUND` for an unknown set; `FAILED_PRECONDITION` (`SET_IN_USE`) while a fleet
    /// follows it or an unfinished rollout pinned it.
    pub async fn delete_set(&mut self, set: &str) -> Result<pb::DeleteSetResponse, ClientError> {
        let req = pb::DeleteSetRequest { set: set.into() };
        Ok(self.sets.delete_set(req).await?.into_inner())
    }

    /// `Sets.DiffSets`: the versions `to` adds, removes and changes against `from` (each a
    /// digest or a tag).
    ///
    /// # Errors
    /// `NOT_FOUND` for an unknown set; `DATA_LOSS` for a set altered in the store.
    pub async fn diff_sets(
        &mut self,
        from: &str,
        to: &str,
    ) -> Result<pb::DiffSetsResponse, ClientError> {
        let req = pb::DiffSetsRequest {
            from: from.into(),
            to: to.into(),
        };
        Ok(self.sets.diff_sets(req).await?.into_inner())
    }
}
