"""SR content for the malignancy risk and the comparison with a prior study (added to ``dicom_sr``'s tree).

Per finding, in its TID 1411 volumetric group::

    NUM (111047, DCM, "Probability of cancer") = Brock risk in %  (UCUM "%")
        HAS CONCEPT MOD (370129005, SCT, "Measurement Method") = (BROCK-2B, 99LUNGCAD, "Brock ... model 2b")
    CODE (BROCK-ASSUMED, 99LUNGCAD, "Brock input not known, stand-in used") = the input, one per input
    CODE (BROCK, 99LUNGCAD, "Brock malignancy risk") = (BROCK-NA, 99LUNGCAD, "Not applicable: calcified")
    -- with a comparison --
    CODE (INTERVAL, 99LUNGCAD, "Interval change since prior") = New finding (SCT 129721008), Increased size
        (SCT 15454001), Decreased size (SCT 19776001), Stable / Resolved (99LUNGCAD)
    NUM (D-CHANGE) mm, (V-CHANGE) %, (VDT, "Volume doubling time") d with its 95 % limits (VDT-LOW / VDT-HIGH)

"Probability of cancer" is DICOM's own concept (CID 6048, the CAD SR templates); the percentage is what the
paper and the calculators print.  One TID 1501 group, tracking identifier "Prior study", names the prior:
CODE (122140, DCM, "Comparison with Prior Study Done") = Yes, UIDREF Study Instance UID (DCM 110180) and
Series Instance UID (DCM 112002), DATE Study Date (DCM 111060), NUM interval (INTERVAL-D) in days; and one
group per resolved nodule ("Prior nodule k", status Resolved).  The prior's SOP Instance UIDs are not in the
``Comparison`` contract, so the prior cannot be listed in Pertinent Other Evidence Sequence (0040,A385),
which needs them; the UIDREF items are the reference.
"""

from __future__ import annotations

from datetime import date

from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from lungcad.contracts import MalignancyRisk
from lungcad.report.dicom_common import PRIVATE_SCHEME
from lungcad.report.shown import ShownFinding

BROCK_METHOD = Code("BROCK-2B", PRIVATE_SCHEME, "Brock (PanCan) full model 2b, McWilliams NEJM 2013")
BROCK_CONCEPT = Code("BROCK", PRIVATE_SCHEME, "Brock malignancy risk")
BROCK_NOT_APPLICABLE = Code("BROCK-NA", PRIVATE_SCHEME, "Not applicable: calcified nodule")
BROCK_ASSUMED = Code("BROCK-ASSUMED", PRIVATE_SCHEME, "Brock input not known, stand-in used")
BROCK_INPUTS = {
    "age": Code("BR-AGE", PRIVATE_SCHEME, "Age"),
    "sex": Code("BR-SEX", PRIVATE_SCHEME, "Sex"),
    "family history": Code("BR-FH", PRIVATE_SCHEME, "Family history of lung cancer"),
    "emphysema": Code("BR-EMPH", PRIVATE_SCHEME, "Emphysema"),
    "upper lobe": Code("BR-UPPER", PRIVATE_SCHEME, "Upper-lobe location"),
    "nodule count": Code("BR-COUNT", PRIVATE_SCHEME, "Nodule count"),
    "spiculation": Code("BR-SPIC", PRIVATE_SCHEME, "Spiculation"),
}
INTERVAL_CONCEPT = Code("INTERVAL", PRIVATE_SCHEME, "Interval change since prior")
INTERVAL_CODES = {
    "new": codes.SCT.NewFinding,
    "growing": codes.SCT.IncreasedSize,
    "shrinking": codes.SCT.DecreasedSize,
    "stable": Code("STABLE", PRIVATE_SCHEME, "Stable"),
    "resolved": Code("RESOLVED", PRIVATE_SCHEME, "Resolved"),
}
DIAMETER_CHANGE = Code("D-CHANGE", PRIVATE_SCHEME, "Diameter change since prior")
VOLUME_CHANGE = Code("V-CHANGE", PRIVATE_SCHEME, "Volume change since prior")
DOUBLING_TIME = Code("VDT", PRIVATE_SCHEME, "Volume doubling time")
DOUBLING_LOW = Code("VDT-LOW", PRIVATE_SCHEME, "Volume doubling time, 95% lower limit")
DOUBLING_HIGH = Code("VDT-HIGH", PRIVATE_SCHEME, "Volume doubling time, 95% upper limit")
INTERVAL_DAYS = Code("INTERVAL-D", PRIVATE_SCHEME, "Interval since prior study")


def risk_measurements(risk: MalignancyRisk | None) -> list:
    import highdicom as hd

    if risk is None or risk.probability is None:
        return []
    return [
        hd.sr.Measurement(
            name=codes.DCM.ProbabilityOfCancer,
            value=100.0 * risk.probability,
            unit=codes.UCUM.Percent,
            method=BROCK_METHOD,
        )
    ]


def risk_evaluations(risk: MalignancyRisk | None) -> list:
    import highdicom as hd

    if risk is None:
        return []
    if not risk.applicable:
        return [hd.sr.QualitativeEvaluation(BROCK_CONCEPT, BROCK_NOT_APPLICABLE)]
    names = [a.split(":", 1)[0] for a in risk.assumed]
    return [hd.sr.QualitativeEvaluation(BROCK_ASSUMED, BROCK_INPUTS[n]) for n in names if n in BROCK_INPUTS]


def change_of(s: ShownFinding, comparison) -> object | None:
    if comparison is None:
        return None
    return next((n for n in comparison.nodules if n.current_index == s.index), None)


def change_measurements(change) -> list:
    import highdicom as hd

    if change is None:
        return []
    out = []
    if change.diameter_change_mm is not None:
        out.append(
            hd.sr.Measurement(DIAMETER_CHANGE, float(change.diameter_change_mm), codes.UCUM.Millimeter)
        )
    if change.volume_change_pct is not None:
        out.append(hd.sr.Measurement(VOLUME_CHANGE, float(change.volume_change_pct), codes.UCUM.Percent))
    vdt = change.doubling_time
    if vdt is not None and vdt.days is not None:
        out.append(hd.sr.Measurement(DOUBLING_TIME, float(vdt.days), codes.UCUM.Day))
        if vdt.low_days is not None:
            out.append(hd.sr.Measurement(DOUBLING_LOW, float(vdt.low_days), codes.UCUM.Day))
        if vdt.high_days is not None:
            out.append(hd.sr.Measurement(DOUBLING_HIGH, float(vdt.high_days), codes.UCUM.Day))
    return out


def change_evaluations(change) -> list:
    import highdicom as hd

    if change is None:
        return []
    return [hd.sr.QualitativeEvaluation(INTERVAL_CONCEPT, INTERVAL_CODES[change.status.value])]


def comparison_groups(comparison, algorithm) -> list:
    """The "Prior study" group and one group per resolved nodule (empty without a comparison)."""
    import highdicom as hd

    if comparison is None:
        return []
    measurements = []
    if comparison.interval_days is not None:
        measurements.append(hd.sr.Measurement(INTERVAL_DAYS, float(comparison.interval_days), codes.UCUM.Day))
    prior = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(identifier="Prior study"),
        finding_type=codes.SCT.Lung,
        algorithm_id=algorithm,
        measurements=measurements or None,
        qualitative_evaluations=[
            hd.sr.QualitativeEvaluation(codes.DCM.ComparisonWithPriorStudyDone, codes.SCT.Yes)
        ],
    )
    contains = hd.sr.RelationshipTypeValues.CONTAINS
    items = prior[0].ContentSequence
    if comparison.prior.study_uid:
        items.append(
            hd.sr.UIDRefContentItem(codes.DCM.StudyInstanceUID, comparison.prior.study_uid, contains)
        )
    if comparison.prior.series_uid:
        items.append(
            hd.sr.UIDRefContentItem(codes.DCM.SeriesInstanceUID, comparison.prior.series_uid, contains)
        )
    if comparison.prior.study_date:
        try:
            day = date.fromisoformat(comparison.prior.study_date)
        except ValueError:
            day = None
        if day is not None:
            items.append(hd.sr.DateContentItem(codes.DCM.StudyDate, day, contains))
    groups = [prior]
    for n in comparison.nodules:
        if n.current_index is None:
            groups.append(
                hd.sr.MeasurementsAndQualitativeEvaluations(
                    tracking_identifier=hd.sr.TrackingIdentifier(
                        identifier=f"Prior nodule {(n.prior_index or 0) + 1}"
                    ),
                    finding_type=codes.SCT.Nodule,
                    algorithm_id=algorithm,
                    qualitative_evaluations=change_evaluations(n),
                )
            )
    return groups
