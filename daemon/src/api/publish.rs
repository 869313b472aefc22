//! `PublishSet`'s stream after its header, to the set's files: either `file` chunks (path +
//! bytes, a file's chunks consecutive) or the chunks of one tar archive. Both keep the
//! set's limits as the bytes arrive (a set above `max_set_bytes` or `max_set_files` is
//! refused at the file that crosses them, never held whole) and give the engine the same
//! files, so one set has one digest however it was sent. An archive is read on a blocking
//! thread as its chunks arrive: its regular files under the same path rules as files sent
//! one by one (a leading `./`, as `tar -C dir .` writes, is dropped; directory entries are
//! skipped), any other entry (a link, a device, a FIFO) refused naming it.

use std::io::Read;

use avocet_proto::v1::{self as pb, publish_set_request::Item};
use tokio::sync::mpsc;
use tonic::{Status, Streaming};

use super::{ApiError, invalid::RequestError};
use crate::engine::{EngineError, SetError, SetFile, SetLimits, path_refusal};

/// Archive chunks received ahead of the thread reading them.
const IN_FLIGHT: usize = 4;

/// Bytes an archive may spend per file on its headers: a ustar header, a pax header and
/// its records, and the padding of both to 512 bytes.
const HEADER_BYTES_PER_FILE: u64 = 4096;

/// The files of a `PublishSet` stream whose header was read, in the order sent; empty
/// for a stream that ends after its header.
///
/// # Errors
/// `INVALID_ARGUMENT` for a message with neither `file` nor `tar`, a second header, or
/// `file` and `tar` chunks mixed; the [`SetError`] of a set above its limits, a refused
/// path or entry, an archive that does not read (nothing is stored then); the stream's
/// own error.
pub(super) async fn receive_files(
    stream: &mut Streaming<pb::PublishSetRequest>,
    limits: SetLimits,
) -> Result<Vec<SetFile>, Status> {
    match stream.message().await? {
        None => Ok(Vec::new()),
        Some(pb::PublishSetRequest {
            item: Some(Item::File(chunk)),
        }) => by_file(chunk, stream, limits).await,
        Some(pb::PublishSetRequest {
            item: Some(Item::Tar(data)),
        }) => by_tar(data, stream, limits).await,
        Some(_) => Err(invalid(
            "only the first message is a header, and every other one a file or tar chunk",
        )
        .into()),
    }
}

/// Files sent as `file` chunks, from the first one.
async fn by_file(
    first: pb::SetFileChunk,
    stream: &mut Streaming<pb::PublishSetRequest>,
    limits: SetLimits,
) -> Result<Vec<SetFile>, Status> {
    let (mut files, mut bytes): (Vec<SetFile>, u64) = (Vec::new(), 0);
    let mut next = Some(first);
    while let Some(chunk) = next.take() {
        bytes += chunk.data.len() as u64;
        if bytes > limits.max_bytes {
            return Err(set_error(SetError::TooLarge {
                path: chunk.path,
                bytes,
                limit: limits.max_bytes,
            }));
        }
        match files.last_mut() {
            Some(last) if last.path == chunk.path => last.bytes.extend_from_slice(&chunk.data),
            _ => {
                if files.len() >= limits.max_files {
                    return Err(set_error(SetError::TooManyFiles {
                        path: chunk.path,
                        limit: limits.max_files,
                    }));
                }
                files.push(SetFile {
                    path: chunk.path,
                    bytes: chunk.data,
                });
            }
        }
        next = match stream.message().await? {
            None => None,
            Some(pb::PublishSetRequest {
                item: Some(Item::File(chunk)),
            }) => Some(chunk),
            Some(_) => {
                return Err(invalid("a set sent as files is sent as file chunks only").into());
            }
        };
    }
    Ok(files)
}

/// Files sent as one tar archive, from its first chunk: read on a blocking thread as the
/// chunks arrive. Bytes after the archive's end (a record's zero padding) are received
/// and dropped; the archive with them is at most `max_set_bytes` plus
/// [`HEADER_BYTES_PER_FILE`] per file allowed and 1 MiB.
async fn by_tar(
    first: Vec<u8>,
    stream: &mut Streaming<pb::PublishSetRequest>,
    limits: SetLimits,
) -> Result<Vec<SetFile>, Status> {
    let cap = limits
        .max_bytes
        .saturating_add((limits.max_files as u64 + 1).saturating_mul(HEADER_BYTES_PER_FILE))
        .saturating_add(1 << 20);
    let too_large = || {
        set_error(SetError::Archive(format!(
            "above {cap} bytes: max_set_bytes and {HEADER_BYTES_PER_FILE} bytes of headers \
             per file allowed"
        )))
    };
    let (tx, rx) = mpsc::channel::<Vec<u8>>(IN_FLIGHT);
    let reader = tokio::task::spawn_blocking(move || read_tar(Chunks::new(rx), limits));
    let mut received = first.len() as u64;
    let mut next = Some(first);
    // Fed until the stream ends or the reader stops (the archive's end, or a refusal).
    while let Some(data) = next.take() {
        if received > cap {
            return Err(too_large());
        }
        if tx.send(data).await.is_err() {
            break;
        }
        next = match stream.message().await? {
            None => None,
            Some(pb::PublishSetRequest {
                item: Some(Item::Tar(data)),
            }) => {
                received += data.len() as u64;
                Some(data)
            }
            Some(_) => return Err(mixed_tar()),
        };
    }
    drop(tx);
    let files = reader
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
        .map_err(set_error)?;
    // What follows the archive's end (a record's zero padding) is received and dropped.
    while let Some(msg) = stream.message().await? {
        let Some(Item::Tar(data)) = msg.item else {
            return Err(mixed_tar());
        };
        received += data.len() as u64;
        if received > cap {
            return Err(too_large());
        }
    }
    Ok(files)
}

fn mixed_tar() -> Status {
    invalid("a set sent as a tar archive is sent as tar chunks only").into()
}

/// The chunks of an archive as one byte stream, read on a blocking thread; it ends when
/// the sender is dropped.
struct Chunks {
    rx: mpsc::Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    at: usize,
}

impl Chunks {
    fn new(rx: mpsc::Receiver<Vec<u8>>) -> Self {
        Self {
            rx,
            chunk: Vec::new(),
            at: 0,
        }
    }
}

impl Read for Chunks {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.chunk.len() {
            match self.rx.blocking_recv() {
                Some(chunk) => (self.chunk, self.at) = (chunk, 0),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// The regular files of the tar archive `input`, in its order, under `limits`: each
/// entry's declared size is counted before its bytes are read.
///
/// # Errors
/// [`SetError::Path`] for a path [`path_refusal`] refuses, one not UTF-8, or an entry
/// that is not a regular file or a directory; [`SetError::TooManyFiles`],
/// [`SetError::TooLarge`] naming the entry that crosses the limit; [`SetError::Archive`]
/// for an archive that does not read.
pub(crate) fn read_tar(input: impl Read, limits: SetLimits) -> Result<Vec<SetFile>, SetError> {
    let unreadable = |e: std::io::Error| SetError::Archive(e.to_string());
    let mut archive = tar::Archive::new(input);
    let (mut files, mut bytes) = (Vec::new(), 0u64);
    for entry in archive.entries().map_err(unreadable)? {
        let mut entry = entry.map_err(unreadable)?;
        let raw = entry.path_bytes().into_owned();
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            continue;
        }
        let Ok(name) = String::from_utf8(raw) else {
            let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            return Err(SetError::Path {
                path,
                reason: "a path that is not UTF-8",
            });
        };
        let mut path = name.as_str();
        while let Some(rest) = path.strip_prefix("./") {
            path = rest;
        }
        if kind.is_dir() {
            let dir = path.trim_end_matches('/');
            if dir.is_empty() || dir == "." {
                continue;
            }
            if let Some(reason) = path_refusal(dir) {
                return Err(SetError::Path {
                    path: name.clone(),
                    reason,
                });
            }
            continue;
        }
        if let Some(reason) = entry_refusal(kind).or_else(|| path_refusal(path)) {
            return Err(SetError::Path {
                path: name.clone(),
                reason,
            });
        }
        if files.len() >= limits.max_files {
            return Err(SetError::TooManyFiles {
                path: path.to_owned(),
                limit: limits.max_files,
            });
        }
        let size = entry.size();
        bytes = bytes.saturating_add(size);
        if bytes > limits.max_bytes {
            return Err(SetError::TooLarge {
                path: path.to_owned(),
                bytes,
                limit: limits.max_bytes,
            });
        }
        let mut data = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        entry.read_to_end(&mut data).map_err(unreadable)?;
        if data.len() as u64 != size {
            return Err(SetError::Archive(format!(
                "{path:?} ends after {} of its {size} bytes",
                data.len()
            )));
        }
        files.push(SetFile {
            path: path.to_owned(),
            bytes: data,
        });
    }
    Ok(files)
}

/// Why an archive entry of type `kind` is not a file of a set, or `None` for a regular file.
fn entry_refusal(kind: tar::EntryType) -> Option<&'static str> {
    use tar::EntryType as T;
    match kind {
        T::Regular | T::Continuous => None,
        T::Symlink => Some("a symbolic link: a set holds regular files only"),
        T::Link => Some("a hard link: a set holds regular files only"),
        T::Char | T::Block => Some("a device: a set holds regular files only"),
        T::Fifo => Some("a FIFO: a set holds regular files only"),
        _ => Some("not a regular file: a set holds regular files only"),
    }
}

fn invalid(message: &'static str) -> ApiError {
    RequestError::PublishStream(message).into()
}

fn set_error(e: SetError) -> Status {
    ApiError::from(EngineError::from(e)).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> SetLimits {
        SetLimits {
            max_bytes: 1 << 20,
            max_files: 8,
            ..SetLimits::default()
        }
    }

    /// An archive of one entry of type `kind` named `name` as given (byte for byte).
    fn one(name: &str, kind: tar::EntryType, data: &[u8]) -> Vec<u8> {
        let mut h = tar::Header::new_ustar();
        h.as_ustar_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_cksum();
        let mut b = tar::Builder::new(Vec::new());
        b.append(&h, data).unwrap();
        b.into_inner().unwrap()
    }

    fn refusal(archive: &[u8]) -> String {
        read_tar(archive, limits()).unwrap_err().to_string()
    }

    /// Directories are skipped and `./` dropped; a path longer than a ustar name reads
    /// whole.
    #[test]
    fn an_archive_gives_its_regular_files_by_their_set_paths() {
        let mut b = tar::Builder::new(Vec::new());
        let mut dir = tar::Header::new_ustar();
        dir.set_entry_type(tar::EntryType::Directory);
        dir.set_size(0);
        b.append_data(&mut dir, "2024-01-01-000000_a/", &[][..])
            .unwrap();
        let long = format!("{}/up.sql", "d".repeat(150));
        let mut h = tar::Header::new_ustar();
        h.set_size(3);
        b.append_data(&mut h, &long, &b"one"[..]).unwrap();
        let mut archive = b.into_inner().unwrap();
        let dotted = one("./1_a.sql", tar::EntryType::Regular, b"two");
        archive.truncate(archive.len() - 1024);
        archive.extend_from_slice(&dotted);
        let files = read_tar(&archive[..], limits()).unwrap();
        let got: Vec<(&str, &[u8])> = files
            .iter()
            .map(|f| (f.path.as_str(), f.bytes.as_slice()))
            .collect();
        assert_eq!(
            got,
            [(long.as_str(), &b"one"[..]), ("1_a.sql", &b"two"[..])]
        );
    }

    #[test]
    fn links_devices_fifos_and_paths_out_of_the_set_are_refused_naming_them() {
        for (kind, why) in [
            (tar::EntryType::Symlink, "symbolic link"),
            (tar::EntryType::Link, "hard link"),
            (tar::EntryType::Char, "device"),
            (tar::EntryType::Block, "device"),
            (tar::EntryType::Fifo, "FIFO"),
        ] {
            let e = refusal(&one("1_a.sql", kind, b""));
            assert!(e.contains("1_a.sql") && e.contains(why), "{kind:?}: {e}");
        }
        for bad in ["../1_a.sql", "/etc/1_a.sql", "a/b/c.sql"] {
            let e = refusal(&one(bad, tar::EntryType::Regular, b"SELECT 1;"));
            assert!(e.contains(bad), "{bad}: {e}");
        }
        let e = refusal(&one("../", tar::EntryType::Directory, b""));
        assert!(e.contains(".."), "{e}");
        let e = refusal(&one("1_a.sql", tar::EntryType::Regular, &[b'x'; 600])[..700]);
        assert!(e.contains("tar archive"), "{e}");
    }

    /// An entry's declared size counts before its bytes are read; a ninth file is refused.
    #[test]
    fn limits_are_kept_entry_by_entry() {
        let big = one(
            "1_a.sql",
            tar::EntryType::Regular,
            &vec![b'x'; (1 << 20) + 1],
        );
        assert!(matches!(
            read_tar(&big[..], limits()),
            Err(SetError::TooLarge { path, .. }) if path == "1_a.sql"
        ));
        let mut b = tar::Builder::new(Vec::new());
        for i in 0..9 {
            let mut h = tar::Header::new_ustar();
            h.set_size(1);
            b.append_data(&mut h, format!("{i}_a.sql"), &b"x"[..])
                .unwrap();
        }
        let many = b.into_inner().unwrap();
        assert!(matches!(
            read_tar(&many[..], limits()),
            Err(SetError::TooManyFiles { path, .. }) if path == "8_a.sql"
        ));
    }
}
