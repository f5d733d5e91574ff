"""The dashboard's pages: one table of what exists, who may open it and what it loads.

Adding a page (the whole recipe; see README "The dashboard"):

1. a :class:`Page` in :data:`PAGES` -- its name, URL (under ``/ui``), title and the actions its role needs;
2. its template ``service/ui_templates/<name>.html`` (``{% extends "base.html" %}``, fill ``content``);
3. its script ``web/src/pages/<name>.js`` (built to ``/ui/static/pages/<name>.js``, loaded by the template
   base; it calls ``/api/v1`` through ``web/src/lib/api.js``);
4. a browser test in ``tests/web/`` (log in, open it, axe, screenshots).

The navigation shows a page only to roles that hold all of its ``actions``, and ``lungcad.service.ui``
refuses the page (403) to the others -- the API refuses their calls anyway; hiding is a courtesy, the check
is the rule.
"""

from __future__ import annotations

from dataclasses import dataclass

from lungcad.service.security import Action, Principal


@dataclass(frozen=True)
class Page:
    """One page: ``/ui{path}``, template ``<name>.html``, script ``pages/<name>.js``."""

    name: str
    path: str
    title: str
    actions: frozenset[Action]
    nav: bool = True  # listed in the navigation (pages reached from another page, e.g. a study: False)

    def allowed(self, principal: Principal) -> bool:
        return all(principal.can(a) for a in self.actions)


A = Action
PAGES: list[Page] = [
    Page("worklist", "/worklist", "Worklist", frozenset({A.WORKLIST_READ})),
    Page("upload", "/upload", "Upload", frozenset({A.STUDY_UPLOAD, A.ANALYSIS_CREATE, A.ANALYSIS_READ})),
    Page("study", "/study/{analysis_id}", "Study", frozenset({A.ANALYSIS_READ, A.STUDY_READ}), nav=False),
]
# the research and operations pages (issue 15); their JSON beyond /api/v1 is lungcad.service.ui_data's
PAGES += [
    Page("batches", "/batches", "Batches", frozenset({A.ANALYSIS_READ, A.STUDY_READ})),
    Page("models", "/models", "Models", frozenset({A.MODEL_READ})),
    Page("training", "/training", "Training", frozenset({A.TRAINING_READ})),
    Page("experiments", "/experiments", "Experiments", frozenset({A.EXPERIMENT_READ})),
    Page("operations", "/operations", "Operations", frozenset({A.AUDIT_READ})),
]


def nav_for(principal: Principal) -> list[Page]:
    """The navigation of ``principal``'s role, in :data:`PAGES` order."""
    return [p for p in PAGES if p.nav and p.allowed(principal)]


def home_for(principal: Principal) -> str:
    """Where a login lands: the first page of the role's navigation (``/ui/`` + nothing: no page at all)."""
    pages = nav_for(principal)
    return f"/ui{pages[0].path}" if pages else "/ui/none"
