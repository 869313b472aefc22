//! `avocet.v1.Sets`: migration sets published through the API. `PublishSet` reads its
//! stream (files or one tar archive) under the set's limits (`publish.rs`), then hands the
//! files to the engine.

use std::{str::FromStr, sync::Arc};

use avocet_proto::v1::{self as pb, publish_set_request::Item, sets_server::Sets};
use tonic::{Request, Response, Status, Streaming};

use super::{ApiError, admit, invalid::RequestError, send::Wire};
use crate::{
    auth::Rpc,
    engine::{Engine, PublishRequest, StoredFile, StoredSet},
    model::{DialectKind, MigrationKey, SetFormat},
};

/// The Sets service.
pub(crate) struct SetsService(pub(super) Arc<Engine>);

#[tonic::async_trait]
impl Sets for SetsService {
    async fn publish_set(
        &self,
        request: Request<Streaming<pb::PublishSetRequest>>,
    ) -> Result<Response<pb::PublishSetResponse>, Status> {
        let (_, caller) = admit(&request, Rpc::PublishSet)?;
        let mut stream = request.into_inner();
        let header = match stream.message().await? {
            Some(pb::PublishSetRequest {
                item: Some(Item::Header(h)),
            }) => h,
            _ => return Err(invalid("the first message must be the header").into()),
        };
        let format = match header.format.as_str() {
            "" => SetFormat::Auto,
            f => SetFormat::from_str(f).map_err(unknown_header)?,
        };
        if header.dialect.is_empty() {
            return Err(ApiError::Missing("dialect").into());
        }
        let dialect = DialectKind::from_str(&header.dialect).map_err(unknown_header)?;
        let files = super::publish::receive_files(&mut stream, self.0.set_limits()).await?;
        if files.is_empty() {
            return Err(invalid("the set has no file").into());
        }
        let tag = Some(header.tag).filter(|t| !t.is_empty());
        let published = self
            .0
            .publish_set(
                PublishRequest {
                    format,
                    dialect,
                    tag,
                    files,
                },
                &caller,
            )
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::PublishSetResponse {
            digest: published.digest,
            created: published.created,
            migrations: published.migrations as u32,
            bytes: published.bytes,
            files: published.files as u32,
            format: published.format.as_str().to_owned(),
        }))
    }

    async fn tag_set(
        &self,
        request: Request<pb::TagSetRequest>,
    ) -> Result<Response<pb::TagSetResponse>, Status> {
        let (who, caller) = admit(&request, Rpc::TagSet)?;
        let req = request.into_inner();
        if req.name.is_empty() {
            return Err(ApiError::Missing("name").into());
        }
        if req.set.is_empty() {
            return Err(ApiError::Missing("set").into());
        }
        // Moving a tag changes what the fleets following it plan: the caller must be
        // allowed on each of them.
        for fleet in self.0.followers(&req.name) {
            who.may_on(Rpc::TagSet, &fleet)?;
        }
        let (digest, from) = self
            .0
            .tag_set(&req.name, &req.set, &caller)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::TagSetResponse {
            name: req.name,
            digest,
            previous_digest: from.unwrap_or_default(),
        }))
    }

    async fn list_sets(
        &self,
        request: Request<pb::ListSetsRequest>,
    ) -> Result<Response<pb::ListSetsResponse>, Status> {
        admit(&request, Rpc::ListSets)?;
        let sets = self.0.list_sets().await.map_err(ApiError::from)?;
        Ok(Response::new(pb::ListSetsResponse {
            sets: sets.iter().map(info).collect(),
        }))
    }

    async fn get_set(
        &self,
        request: Request<pb::GetSetRequest>,
    ) -> Result<Response<pb::GetSetResponse>, Status> {
        admit(&request, Rpc::GetSet)?;
        let req = request.into_inner();
        if req.set.is_empty() {
            return Err(ApiError::Missing("set").into());
        }
        let (set, files) = self.0.get_set(&req.set).await.map_err(ApiError::from)?;
        Ok(Response::new(pb::GetSetResponse {
            set: Some(info(&set)),
            files: files
                .into_iter()
                .map(|f| file(f, req.include_files))
                .collect(),
        }))
    }

    async fn diff_sets(
        &self,
        request: Request<pb::DiffSetsRequest>,
    ) -> Result<Response<pb::DiffSetsResponse>, Status> {
        admit(&request, Rpc::DiffSets)?;
        let req = request.into_inner();
        for (field, value) in [("from", &req.from), ("to", &req.to)] {
            if value.is_empty() {
                return Err(ApiError::Missing(field).into());
            }
        }
        let d = self
            .0
            .diff_sets(&req.from, &req.to)
            .await
            .map_err(ApiError::from)?;
        let versions = |v: Vec<(MigrationKey, String)>| {
            v.into_iter()
                .map(|(key, name)| pb::SetVersion {
                    version: Some(key.wire()),
                    name,
                })
                .collect()
        };
        Ok(Response::new(pb::DiffSetsResponse {
            from_digest: d.from,
            to_digest: d.to,
            added: versions(d.added),
            removed: versions(d.removed),
            changed: versions(d.changed),
        }))
    }

    async fn delete_set(
        &self,
        request: Request<pb::DeleteSetRequest>,
    ) -> Result<Response<pb::DeleteSetResponse>, Status> {
        let (_, caller) = admit(&request, Rpc::DeleteSet)?;
        let req = request.into_inner();
        if req.set.is_empty() {
            return Err(ApiError::Missing("set").into());
        }
        let (digest, tags) = self
            .0
            .delete_set(&req.set, &caller)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::DeleteSetResponse { digest, tags }))
    }
}

fn unknown_header(why: String) -> ApiError {
    RequestError::PublishHeader(why).into()
}

fn invalid(message: &'static str) -> ApiError {
    RequestError::PublishStream(message).into()
}

fn info(s: &StoredSet) -> pb::SetInfo {
    pb::SetInfo {
        digest: s.digest.clone(),
        format: s.format.clone(),
        dialect: s.dialect.clone(),
        bytes: s.bytes.max(0) as u64,
        files: s.file_count.max(0) as u32,
        migrations: s.migrations.max(0) as u32,
        published_by: s.published_by.clone(),
        published_at_unix_ms: s.published_at,
        tags: s.tags.clone(),
    }
}

fn file(f: StoredFile, data: bool) -> pb::SetFile {
    pb::SetFile {
        bytes: f.bytes.len() as u64,
        path: f.path,
        sha256: f.sha256,
        data: if data { f.bytes } else { Vec::new() },
    }
}
