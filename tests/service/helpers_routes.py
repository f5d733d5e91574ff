"""Every route of the app, with the actions it requires, and a well-formed request for each one.

``api_routes(app)`` walks the app's routes (FastAPI's ``iter_route_contexts``, so routers included under
``/api/v1`` are seen with their full path and their router-level dependencies) and reads each route's
actions from the ``require(action)`` dependencies anywhere in its dependency tree (``check.action``, set by
``lungcad.service.deps.require``, or the closure's ``action``).  A route added tomorrow is walked tomorrow.

``Fixture.request_for(route)`` builds a request that gets an allowed caller past 404 / 422 where it can:
path parameters filled with the ids of a stored study, a done analysis and its batch, bodies that the route
accepts.  Destructive routes get something disposable (a fresh study row to delete, a fresh key to revoke).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

from lungcad.service.security import Action
from tests.service.uploads import BOUNDARY, STOW_TYPE, form, stow_body

API = "/api/v1"
_PARAM = re.compile(r"{([^}:]+)(:[^}]*)?}")


@dataclass(frozen=True)
class RouteInfo:
    method: str
    path: str  # the template, e.g. /api/v1/studies/{study_id}
    actions: frozenset[Action]

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def params(self) -> list[str]:
        return [m.group(1) for m in _PARAM.finditer(self.path)]


def _declared(call: Any) -> set[Action]:
    """The action of a ``require(action)`` dependency: its ``.action`` attribute, else the ``Action`` its
    closure holds (``require`` returns a closure over ``action``)."""
    action = getattr(call, "action", None)
    if isinstance(action, Action):
        return {action}
    cells = getattr(call, "__closure__", None) or ()
    found = set()
    for cell in cells:
        try:
            value = cell.cell_contents
        except ValueError:  # an empty cell
            continue
        if isinstance(value, Action):
            found.add(value)
    return found


def _actions(dependant: Any) -> set[Action]:
    out = _declared(getattr(dependant, "call", None))
    for sub in getattr(dependant, "dependencies", ()):
        out |= _actions(sub)
    return out


def api_routes(app: FastAPI) -> list[RouteInfo]:
    """(method, template, actions) of every HTTP route of ``app`` (HEAD left out: it mirrors GET)."""
    out = []
    for rc in iter_route_contexts(app.routes):
        path = rc.path_format or rc.path
        if not path:
            continue
        dependant = getattr(rc, "dependant", None)
        actions = frozenset(_actions(dependant)) if dependant is not None else frozenset()
        for method in sorted((rc.methods or set()) - {"HEAD"}):
            out.append(RouteInfo(method, _PARAM.sub(lambda m: "{" + m.group(1) + "}", path), actions))
    return out


@dataclass
class Fixture:
    """Ids the requests point at, the DICOM bytes uploads send, and makers of disposable things."""

    study_id: str
    analysis_id: str
    batch_id: str
    config_hash: str
    model_sha256: str
    dicom: list[bytes]
    fresh_study: Callable[[], str]
    fresh_key_prefix: Callable[[], str]
    file_name: str = "result.json"
    extra: dict[str, str] = field(default_factory=dict)

    def _param(self, route: RouteInfo, name: str) -> str:
        if name == "study_id" and route.method == "DELETE":
            return self.fresh_study()
        if name == "prefix" and route.method == "DELETE":
            return self.fresh_key_prefix()
        known = {
            "study_id": self.study_id,
            "analysis_id": self.analysis_id,
            "batch_id": self.batch_id,
            "config_hash": self.config_hash,
            "name": self.file_name,
            "sha256": self.model_sha256,
            **self.extra,
        }
        return known.get(name, uuid.uuid4().hex)  # a route with a new parameter: well-formed, unknown id

    def url(self, route: RouteInfo) -> str:
        path = route.path
        for name in route.params:
            path = path.replace("{" + name + "}", self._param(route, name))
        return path

    def body(self, route: RouteInfo) -> dict[str, Any]:
        """``httpx`` keyword arguments of the route's request body (none for most)."""
        key = (route.method, route.path)
        if key == ("POST", f"{API}/studies"):
            return {"files": form(*((f"im{i:04d}.dcm", d) for i, d in enumerate(self.dicom)))}
        if key == ("POST", f"{API}/dicomweb/studies"):
            return {"content": stow_body(self.dicom), "headers": {"Content-Type": STOW_TYPE}}
        if key == ("POST", f"{API}/analyses"):
            return {"json": {"study_id": self.study_id}}
        if key == ("POST", f"{API}/batches"):
            return {"json": {"study_ids": [self.study_id]}}
        if key == ("POST", f"{API}/models"):  # not a model: refused with a 4xx by a caller who may upload
            return {"files": {"file": ("junk.pt", b"not a model", "application/octet-stream")}}
        if key == ("PUT", f"{API}/models/active"):
            return {"json": {"sha256": self.model_sha256}}
        if key == ("POST", f"{API}/admin/keys"):
            return {"json": {"role": "viewer", "name": "rbac-walk"}}
        return {}

    def query(self, route: RouteInfo) -> dict[str, str]:
        if route.path == f"{API}/configs/diff":
            return {"a": self.config_hash, "b": self.config_hash}
        return {}

    def requests(self, routes: list[RouteInfo]) -> Iterator[tuple[RouteInfo, str, dict[str, Any]]]:
        for route in routes:
            yield route, self.url(route), {"params": self.query(route), **self.body(route)}


__all__ = ["API", "BOUNDARY", "Fixture", "RouteInfo", "api_routes"]
