"""The stand-in's file uploads, Slack's current flow (what `WebClient.files_upload_v2`
calls): `files.getUploadURLExternal` hands out an upload URL (served by the stand-in),
the bytes are POSTed there, and `files.completeUploadExternal` shares the file in a
channel (or a thread) with an initial comment. Argument names and errors follow Slack's
method pages (docs.slack.dev/reference/methods/files.getUploadURLExternal and
files.completeUploadExternal): `invalid_arguments`, `file_not_found`,
`channel_not_found`, `file_upload_not_completed`-like refusals for unsent bytes."""

from __future__ import annotations

import copy
import json
import uuid
from dataclasses import dataclass
from typing import Any

from backupbot.devkit.slack_standin.records import ApiError
from backupbot.devkit.slack_standin.state import StandinState


@dataclass
class UploadedFile:
    """A file as the stand-in holds it; `channel` set once completeUploadExternal shared it."""

    id: str
    filename: str
    length: int
    data: bytes | None = None
    title: str | None = None
    alt_txt: str | None = None
    channel: str | None = None
    thread_ts: str | None = None
    initial_comment: str | None = None


class FileUploads(StandinState):
    _files: dict[str, UploadedFile]

    def _files_get_upload_url_external(self, params: dict[str, Any]) -> dict[str, Any]:
        filename = params.get("filename")
        length = str(params.get("length") or "")
        if not isinstance(filename, str) or not filename or not length.isdigit():
            raise ApiError("invalid_arguments")
        file_id = "F" + uuid.uuid4().hex[:10].upper()
        alt = params.get("alt_txt")
        self._files[file_id] = UploadedFile(file_id, filename, int(length), alt_txt=alt)
        return {"upload_url": f"{self._root_url()}/upload/{file_id}", "file_id": file_id}

    def _files_complete_upload_external(self, params: dict[str, Any]) -> dict[str, Any]:
        files = params.get("files")
        if isinstance(files, str):
            try:
                files = json.loads(files)
            except ValueError:
                raise ApiError("invalid_arguments") from None
        if not isinstance(files, list) or not files:
            raise ApiError("invalid_arguments")
        wanted = [self._files.get(str(f.get("id"))) if isinstance(f, dict) else None for f in files]
        found = [f for f in wanted if f is not None and f.data is not None]
        if len(found) != len(files):
            raise ApiError("file_not_found")
        channel = params.get("channel_id") or params.get("channels")
        if channel is not None and (not isinstance(channel, str) or not channel):
            raise ApiError("channel_not_found")
        out = []
        for f, given in zip(found, files, strict=True):
            f.title = given.get("title") or f.filename
            if channel:
                f.channel = self._resolve_channel(channel)
                f.thread_ts = str(params["thread_ts"]) if params.get("thread_ts") else None
                f.initial_comment = params.get("initial_comment") or None
            out.append(
                {"id": f.id, "name": f.filename, "title": f.title, "size": len(f.data or b"")}
            )
        return {"files": out}

    def _handle_upload(self, file_id: str, body: bytes) -> tuple[int, str]:
        """The upload URL: keep the bytes; 200 "OK - <length>" as Slack answers."""
        with self._changed:
            try:
                self._calls.append(("upload", {"file_id": file_id, "length": len(body)}))
                f = self._files.get(file_id)
                if f is None:
                    return 404, "not_found"
                f.data = bytes(body)
                return 200, f"OK - {len(body)}"
            finally:
                self._changed.notify_all()

    def _root_url(self) -> str:
        raise NotImplementedError  # SlackStandin.root_url

    def uploaded_files(self, channel: str | None = None) -> list[UploadedFile]:
        """Files shared with completeUploadExternal, in upload order (copies)."""
        with self._lock:
            wanted = None if channel is None else self._resolve_channel(channel)
            return [
                copy.deepcopy(f)
                for f in self._files.values()
                if f.channel is not None and wanted in (None, f.channel)
            ]
