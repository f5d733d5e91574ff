"""Models known to the service: stored as blobs, described by a row, exactly one active.

A model file is accepted only if ``lungcad.model.bundle.load_bundle`` loads it (the lungcad format, a
network that builds from its configuration and takes its weights) -- a foreign or damaged file is refused
with the loader's reason, and nothing is stored.  The effective configuration of an analysis is the
service's configuration with the model and preprocessing sections replaced by the model's own (as
``Detector`` does), and its hash is what analyses record and the cache keys on.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from lungcad.config import LungcadConfig
from lungcad.errors import InputError
from lungcad.service.db.models import ConfigVersion, ModelActivation, ModelFile
from lungcad.service.db.session import transaction, utcnow
from lungcad.service.storage import sha256_file

if TYPE_CHECKING:  # avoids an import cycle (the context opens the registry)
    from lungcad.service.context import ServiceContext


def read_model_file(path: Path) -> dict[str, Any]:
    """The facts of a model file (loads it: ~1 s).  Raises ``InputError`` for a foreign or broken file."""
    from lungcad.model.bundle import load_bundle

    try:
        bundle = load_bundle(path)
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - a lungcad-format file whose network does not build
        raise InputError(
            f"the model file is incompatible with this lungcad version ({type(exc).__name__}: {exc})",
            fix="export the model with this version's `lungcad export-model`",
        ) from exc
    return {
        "model_id": bundle.model_id,
        "model_version": bundle.model_version,
        "bundle_config_hash": bundle.config_hash,
        "config": bundle.config.model_dump(mode="json"),
        "card": bundle.card,
    }


def register_model(
    ctx: ServiceContext,
    path: Path,
    *,
    filename: str,
    activate: bool = False,
    move: bool = False,
    lineage: dict[str, Any] | None = None,
    by: str | None = None,
) -> ModelFile:
    """Validate and store a model file (idempotent: the same bytes give the same row).

    ``move``: ``path`` is a staging file of the caller's under ``ctx.storage.tmp`` that may be renamed into
    the blob store instead of copied (an upload); it is consumed only when the file is stored.
    ``lineage``: where the model came from (an export: run, data, config hash, metrics); set on a new row
    and on a known one that has none.  ``by``: the key prefix an activation is recorded under.
    """
    digest = sha256_file(path)
    with transaction(ctx.sessions) as s:
        existing = s.get(ModelFile, digest)
        if existing is not None:
            if lineage is not None and existing.lineage is None:
                existing.lineage = lineage
            if activate:
                _activate(s, digest, by)
                s.flush()
                s.refresh(existing)
            return existing
    facts = read_model_file(path)
    if move:
        digest2, size = ctx.storage.put_file(path, move=True)
    else:
        # a name of its own: two registrations of the same bytes at once must not write one staging file
        staged = ctx.storage.tmp / f"model-{digest}-{uuid.uuid4().hex}"
        try:
            shutil.copyfile(path, staged)
            digest2, size = ctx.storage.put_file(staged, move=True)
        finally:
            staged.unlink(missing_ok=True)
    assert digest2 == digest
    try:
        return _insert(ctx, digest, size, filename, facts | {"lineage": lineage}, activate, by)
    except IntegrityError:  # another process registered the same bytes since the look-up above
        with transaction(ctx.sessions) as s:
            if activate:
                _activate(s, digest, by)
            row = s.get(ModelFile, digest)
            assert row is not None
            return row


def _insert(
    ctx: ServiceContext,
    digest: str,
    size: int,
    filename: str,
    facts: dict[str, Any],
    activate: bool,
    by: str | None,
) -> ModelFile:
    with transaction(ctx.sessions) as s:
        row = s.get(ModelFile, digest)
        if row is None:
            row = ModelFile(sha256=digest, size=size, filename=filename, created_at=utcnow(), **facts)
            s.add(row)
            s.flush()
        if activate:
            _activate(s, digest, by)
            s.flush()
            s.refresh(row)
        return row


def _activate(s: Session, digest: str, by: str | None = None, kind: str = "activate") -> None:
    """Make ``digest`` the active model; a change is appended to the activation history."""
    current = s.scalar(select(ModelFile.sha256).where(ModelFile.active.is_(True)))
    s.execute(update(ModelFile).where(ModelFile.sha256 != digest).values(active=False))
    s.execute(update(ModelFile).where(ModelFile.sha256 == digest).values(active=True))
    if current != digest:
        s.add(ModelActivation(at=utcnow(), sha256=digest, by_key=by, kind=kind))


def set_active(ctx: ServiceContext, digest: str, *, by: str | None = None) -> ModelFile:
    with transaction(ctx.sessions) as s:
        row = s.get(ModelFile, digest)
        if row is None:
            raise LookupError(digest)
        _activate(s, digest, by)
        s.flush()
        s.refresh(row)
        return row


def active_model(s: Session) -> ModelFile | None:
    return s.scalar(select(ModelFile).where(ModelFile.active.is_(True)))


def active_stack(s: Session) -> list[str]:
    """The models that were active, oldest first, the current one last: the activation history replayed
    (an activation pushes its model, a rollback pops the top one)."""
    stack: list[str] = []
    for kind, digest in s.execute(
        select(ModelActivation.kind, ModelActivation.sha256).order_by(ModelActivation.id)
    ):
        if kind == "rollback" and stack:
            stack.pop()
        if not stack or stack[-1] != digest:
            stack.append(digest)
    return stack


def rollback(ctx: ServiceContext, *, by: str | None = None) -> ModelFile:
    """Re-activate the model that was active before the current one.

    Raises:
        LookupError: there is none (the current model is the first one ever activated).
    """
    with transaction(ctx.sessions) as s:
        stack = active_stack(s)
        current = active_model(s)
        if current is not None and (not stack or stack[-1] != current.sha256):
            stack.append(current.sha256)  # activated outside the history (a row edited by hand)
        if len(stack) < 2:
            raise LookupError("no earlier active model")
        target = stack[-2]
        _activate(s, target, by, kind="rollback")
        s.flush()
        row = s.get(ModelFile, target)
        assert row is not None
        s.refresh(row)
        return row


def list_activations(s: Session, *, limit: int, offset: int) -> tuple[list[ModelActivation], int]:
    """One page of the activation history, newest first, and its length."""
    total = s.scalar(select(func.count()).select_from(ModelActivation)) or 0
    rows = s.scalars(
        select(ModelActivation).order_by(ModelActivation.id.desc()).limit(limit).offset(offset)
    ).all()
    return list(rows), total


def list_models(s: Session, *, limit: int, offset: int) -> tuple[list[ModelFile], int]:
    """One page of the registered models, newest first, and how many there are."""
    total = s.scalar(select(func.count()).select_from(ModelFile)) or 0
    rows = s.scalars(
        select(ModelFile).order_by(ModelFile.created_at.desc(), ModelFile.sha256).limit(limit).offset(offset)
    ).all()
    return list(rows), total


def card_headline(card: dict[str, Any]) -> dict[str, Any]:
    """The facts of a model card a model list shows (None where the card lacks one or holds another type).

    The card of ``lungcad export-model`` is free-form; these are its headline keys: what the model was
    trained on and for how long, and its validation and test CPM (LUNA16 FROC score, 0-1).
    """

    def pick(value: Any, *types: type) -> Any:
        return value if isinstance(value, types) and not isinstance(value, bool) else None

    test_froc = card.get("test_froc") if isinstance(card.get("test_froc"), dict) else {}
    calibration = card.get("calibration") if isinstance(card.get("calibration"), dict) else {}
    return {
        "training_data": pick(card.get("training_data"), str),
        "training_steps": pick(card.get("training_steps"), int),
        "training_epochs": pick(card.get("training_epochs"), int),
        "training_wall_time_s": pick(card.get("training_wall_time_s"), int, float),
        "validation_cpm": pick(card.get("validation_cpm_best"), int, float),
        "test_cohort": pick(card.get("test_cohort"), str),
        "test_cpm": pick(test_froc.get("cpm"), int, float),
        "calibration": pick(calibration.get("method"), str),
    }


def model_path(ctx: ServiceContext, digest: str) -> Path:
    return ctx.storage.blob_path(digest)


def ensure_active_model(ctx: ServiceContext) -> None:
    """On a data folder with no active model, register and activate the default one."""
    with ctx.sessions() as s:
        if active_model(s) is not None:
            return
    from lungcad.model.bundle import default_model_path

    path = Path(ctx.settings.model_path) if ctx.settings.model_path else default_model_path()
    register_model(ctx, path, filename=path.name, activate=True)


def effective_config(ctx: ServiceContext, model: ModelFile) -> LungcadConfig:
    """The configuration an analysis with ``model`` runs under (see the module docstring)."""
    bundle_cfg = LungcadConfig.model_validate(model.config)
    return ctx.config.model_copy(update={"model": bundle_cfg.model, "preprocess": bundle_cfg.preprocess})


def record_config(ctx: ServiceContext, cfg: LungcadConfig) -> str:
    """Store a configuration version (once per hash) and return its hash."""
    digest = cfg.config_hash()
    try:
        with transaction(ctx.sessions) as s:
            if s.get(ConfigVersion, digest) is None:
                s.add(ConfigVersion(hash=digest, config=cfg.model_dump(mode="json"), created_at=utcnow()))
    except IntegrityError:  # another process stored the same version at the same moment
        pass
    return digest
