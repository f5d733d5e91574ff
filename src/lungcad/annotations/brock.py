"""Brock (PanCan) probability that a nodule seen on a baseline screening CT is, or becomes, lung cancer.

Model: McWilliams A, Tammemagi MC, Mayo JR, et al. Probability of cancer in pulmonary nodules detected on
first screening CT. N Engl J Med 2013;369:910-919 (doi:10.1056/NEJMoa1214726), supplementary appendix,
**full model with spiculation ("model 2b")**, developed on the Pan-Canadian Early Detection of Lung Cancer
Study (PanCan) and validated on the British Columbia Cancer Agency (BCCA) cohort.  A logistic regression::

    logit = -6.7892
            + 0.0287 * (age - 62)
            + 0.6011 * female
            + 0.2961 * family history of lung cancer
            + 0.2953 * emphysema
            - 5.3854 * ((size_mm / 10) ** -0.5 - 1.58113883)
            - 0.1276 * non-solid (ground-glass)     + 0.3770 * part-solid      (solid: 0)
            + 0.6581 * upper lobe
            - 0.0824 * (nodule count - 4)
            + 0.7729 * spiculation
    probability = 1 / (1 + exp(-logit))

Why the odd size term: the paper modelled size by a fractional polynomial, (size / 10 mm) ** -0.5, and
centred it on 4 mm: (4 / 10) ** -0.5 = 1 / sqrt(0.4) = 1.58113883.  Age is centred on 62 years and the
count on 4 nodules, so the intercept -6.7892 is the log-odds of a 62-year-old man with a solitary-looking
4 mm solid non-spiculated lower-zone nodule among 4: p = 1 / (1 + e^6.7892) = 0.1125 %.  Because
(size / 10) ** -0.5 falls as size grows, its negative coefficient makes risk rise with size (steeply below
~10 mm, flattening above).  The count coefficient is negative: more nodules, lower risk for each one.

Coefficient sources (cross-checked; no code was taken from any of them):

1. Eur Radiol 2019;29(10):5367-5377, doi:10.1007/s00330-019-06168-x, Table 2 (PMC6717521, "BU" column):
   0.0287, 0.6011, 0.2961, 0.2953, -5.3854 on (diameter / 10) ** -0.5, 0.377, -0.1276, 0.6581, -0.0824,
   0.7729 and an *uncentred* intercept of 0.2761.  Folding the centring constants into -6.7892 gives the same
   number: -6.7892 - 0.0287 * 62 + 5.3854 * 1.58113883 + 0.0824 * 4 = 0.2761 (tested), which confirms
   the centring on 62 years, 4 mm and 4 nodules.
2. medicalalgorithms.com, "pulmonary-nodule-cancer" (McWilliams et al. models): age - 62, count - 4 and
   the size transform (size / 10) ** -0.5 - 1.58113883.
3. Public re-implementations of the Brock University online calculator carry the same coefficients to 7
   digits (0.0286687, 0.6010727, 0.296109, 0.2953112, -5.385484, -0.1276173, 0.3769578, 0.6581383,
   -0.0824156, 0.7729335, intercept -6.78917); they round to the 4-digit values above and give the same
   probability to 0.1 percentage point on the tested cases (``tests/annotations/test_brock.py``).

We use the 4-digit values as published in the appendix and reproduced in (1).

Inputs, as the paper defined them: age in years; sex; family history = a first-degree relative with lung
cancer; emphysema = present on the CT (the paper scored it *visually*; ``brock_inputs.emphysema_from_lung``
gives a densitometric approximation); size = the **longest** diameter in mm (a volume-equivalent or mean
diameter is smaller, so it gives a lower risk); type non-solid (pure ground-glass), part-solid or solid;
location in an upper lobe (the right middle lobe and lingula count as not upper); count = all nodules on
the scan; spiculation as read by a radiologist.

Limits: validated on *baseline* (first) screening CT of current or former smokers aged 50-75; it is not a
model of interval growth (use volume doubling time on follow-up), and benign calcified nodules are outside
it (``brock_risk`` says "not applicable" instead of returning a number).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from lungcad.errors import InputError
from lungcad.types import Texture

INTERCEPT = -6.7892
AGE_PER_YEAR = 0.0287
AGE_CENTRE_YEARS = 62.0
FEMALE = 0.6011
FAMILY_HISTORY = 0.2961
EMPHYSEMA = 0.2953
SIZE = -5.3854
SIZE_CENTRE = 1.58113883  # (4 mm / 10) ** -0.5
TYPE = {Texture.SOLID: 0.0, Texture.GROUND_GLASS: -0.1276, Texture.PART_SOLID: 0.3770}
UPPER_LOBE = 0.6581
COUNT_PER_NODULE = -0.0824
COUNT_CENTRE = 4
SPICULATION = 0.7729

MIN_AGE_YEARS, MAX_AGE_YEARS = 18.0, 110.0
PANCAN_AGE_RANGE_YEARS = (50.0, 75.0)  # PanCan eligibility; outside it the model extrapolates
MASS_DIAMETER_MM = 30.0  # >= 30 mm is a mass (Fleischner glossary), not a nodule

Sex = Literal["male", "female"]


@dataclass(frozen=True)
class BrockInputs:
    """One nodule and its patient, as the Brock full model (2b) needs them.

    ``None`` means unknown: the model is still evaluated with the documented stand-in value and the
    result's ``assumed`` lists it, so a report can say which inputs were not known.

    Attributes:
        diameter_mm: longest diameter of the nodule in mm (required, > 0).
        nodule_type: ``Texture`` or its value: "solid", "part-solid", "ground-glass" or "calcified"
            (calcified -> not applicable).
        age_years: patient age in years, 18-110; unknown -> 62 (the centring age: no age term).
        sex: "male" / "female"; unknown -> no sex term (the male reference).
        family_history: a first-degree relative with lung cancer; unknown -> absent.
        emphysema: emphysema on the CT; unknown -> absent.
        upper_lobe: nodule in an upper lobe; unknown -> not upper.
        nodule_count: nodules on the scan, >= 1, this one included; unknown -> 1 (a solitary nodule: the
            higher risk of the two readings, as the count coefficient is negative).
        spiculation: spiculated margin; unknown -> absent.
    """

    diameter_mm: float
    nodule_type: Texture | str
    age_years: float | None = None
    sex: Sex | None = None
    family_history: bool | None = None
    emphysema: bool | None = None
    upper_lobe: bool | None = None
    nodule_count: int | None = None
    spiculation: bool | None = None


@dataclass(frozen=True)
class BrockResult:
    """The model's answer for one nodule.

    Attributes:
        applicable: False for a calcified (benign) nodule; ``probability`` is then ``None``.
        probability: 0-1 probability of cancer (``None`` when not applicable).
        linear_predictor: the logit (log-odds) before the logistic function.
        terms: each term's contribution to the logit, by name ("intercept", "age", "sex", ...).
        assumed: the inputs that were unknown and the stand-in used, e.g. "age: unknown, 62 used".
        notes: caveats about this evaluation (extrapolation outside the development data, ...).
        reason: why the model does not apply, when it does not.
    """

    applicable: bool
    probability: float | None
    linear_predictor: float | None
    terms: dict[str, float] = field(default_factory=dict)
    assumed: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    reason: str | None = None

    @property
    def percent(self) -> float | None:
        """Probability in percent (the unit the paper and the calculators print)."""
        return None if self.probability is None else 100.0 * self.probability


def size_term(diameter_mm: float) -> float:
    """The centred size transform ``(d / 10) ** -0.5 - 1.58113883`` (0 at 4 mm, negative above)."""
    return (diameter_mm / 10.0) ** -0.5 - SIZE_CENTRE


def _texture(value: Texture | str) -> Texture:
    try:
        return value if isinstance(value, Texture) else Texture(str(value).strip().lower())
    except ValueError:
        allowed = ", ".join(t.value for t in Texture)
        raise InputError(
            f"nodule_type must be one of {allowed}, got {value!r}",
            fix='use "ground-glass" for a pure non-solid nodule',
        ) from None


def _check(inputs: BrockInputs) -> None:
    d = inputs.diameter_mm
    if isinstance(d, bool) or not isinstance(d, int | float) or not math.isfinite(d) or d <= 0:
        raise InputError(
            f"nodule diameter must be a positive finite number of mm, got {d!r}",
            fix="pass the longest diameter in millimetres",
        )
    age = inputs.age_years
    if age is not None and (not math.isfinite(age) or not MIN_AGE_YEARS <= age <= MAX_AGE_YEARS):
        raise InputError(
            f"age must be {MIN_AGE_YEARS:g}-{MAX_AGE_YEARS:g} years for the Brock model, got {age!r}",
            fix="pass the age in years (DICOM PatientAge '065Y' is 65), or None when unknown",
        )
    if inputs.sex is not None and inputs.sex not in ("male", "female"):
        raise InputError(
            f'sex must be "male", "female" or None, got {inputs.sex!r}',
            fix="the model has two levels; pass None when the sex is unknown or other",
        )
    n = inputs.nodule_count
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise InputError(
            f"nodule_count must be a whole number >= 1 (this nodule included), got {n!r}",
            fix="count every nodule reported on the scan, or pass None when unknown",
        )
    for name in ("family_history", "emphysema", "upper_lobe", "spiculation"):
        value = getattr(inputs, name)
        if value is not None and not isinstance(value, bool):
            raise InputError(f"{name} must be True, False or None, got {value!r}", fix="pass a bool")


def brock_risk(inputs: BrockInputs) -> BrockResult:
    """Brock full-model (2b) probability of cancer for one nodule on a baseline screening CT.

    Worked example (the "high-risk" case of the tests): a 65-year-old woman with a family history and
    emphysema, a 12 mm part-solid spiculated upper-lobe nodule, 2 nodules on the scan::

        intercept                                         -6.7892
        age    0.0287 * (65 - 62)                         +0.0861
        sex    female                                     +0.6011
        family history                                    +0.2961
        emphysema                                         +0.2953
        size  -5.3854 * ((12/10)^-0.5 - 1.58113883)
              = -5.3854 * (0.91287093 - 1.58113883)       +3.5989
        part-solid                                        +0.3770
        upper lobe                                        +0.6581
        count -0.0824 * (2 - 4)                           +0.1648
        spiculation                                       +0.7729
        logit                                             +0.0611   -> p = 1 / (1 + e^-0.0611) = 51.5 %

    Args:
        inputs: the nodule and patient (see ``BrockInputs``).

    Returns:
        ``BrockResult``; for a calcified nodule ``applicable`` is False and there is no probability.

    Raises:
        InputError: a non-positive size, an age outside 18-110, a count < 1, an unknown type or sex.
    """
    texture = _texture(inputs.nodule_type)
    _check(inputs)
    if texture is Texture.CALCIFIED:
        return BrockResult(
            applicable=False,
            probability=None,
            linear_predictor=None,
            reason="calcified nodule: a benign calcification pattern; the Brock model does not apply",
        )
    assumed: list[str] = []
    notes: list[str] = []
    age = inputs.age_years
    if age is None:
        age = AGE_CENTRE_YEARS
        assumed.append("age: unknown, 62 years used (no age term)")
    elif not PANCAN_AGE_RANGE_YEARS[0] <= age <= PANCAN_AGE_RANGE_YEARS[1]:
        notes.append(f"age {age:g} is outside the PanCan cohort's 50-75 years: the model extrapolates")
    if inputs.sex is None:
        assumed.append("sex: unknown, male reference used (no sex term)")

    def flag(name: str, value: bool | None) -> bool:
        if value is None:
            assumed.append(f"{name.replace('_', ' ')}: unknown, absent used")
            return False
        return value

    count = inputs.nodule_count
    if count is None:
        count = 1
        assumed.append("nodule count: unknown, 1 used")
    if inputs.diameter_mm >= MASS_DIAMETER_MM:
        notes.append(
            f"{inputs.diameter_mm:g} mm is a mass (>= 30 mm), beyond the nodules the model was built on"
        )

    terms = {
        "intercept": INTERCEPT,
        "age": AGE_PER_YEAR * (age - AGE_CENTRE_YEARS),
        "sex": FEMALE if inputs.sex == "female" else 0.0,
        "family_history": FAMILY_HISTORY if flag("family_history", inputs.family_history) else 0.0,
        "emphysema": EMPHYSEMA if flag("emphysema", inputs.emphysema) else 0.0,
        "size": SIZE * size_term(float(inputs.diameter_mm)),
        "type": TYPE[texture],
        "upper_lobe": UPPER_LOBE if flag("upper_lobe", inputs.upper_lobe) else 0.0,
        "count": COUNT_PER_NODULE * (count - COUNT_CENTRE),
        "spiculation": SPICULATION if flag("spiculation", inputs.spiculation) else 0.0,
    }
    logit = math.fsum(terms.values())
    return BrockResult(
        applicable=True,
        probability=logistic(logit),
        linear_predictor=logit,
        terms=terms,
        assumed=tuple(assumed),
        notes=tuple(notes),
    )


def logistic(x: float) -> float:
    """1 / (1 + e^-x), written so that neither tail overflows."""
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)
