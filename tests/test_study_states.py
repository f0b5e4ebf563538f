"""The study state machine: legal moves pass, illegal ones raise and change nothing."""
import pytest

from annotation import services
from annotation.errors import IllegalTransition
from annotation.models import Study
from annotation.states import TRANSITIONS, study_transition

S = Study.State


def test_full_lifecycle_reaches_aggregated(make_study):
    study = make_study(live=False)
    assert study.state == S.READY
    assert study.tasks.count() == 3
    services.study_launch(study=study)
    services.study_close(study=study)
    services.study_aggregate(study=study)
    study.refresh_from_db()
    assert study.state == S.AGGREGATED
    assert study.results.count() == 3


@pytest.mark.parametrize("start", list(S.values))
def test_every_illegal_transition_is_refused_and_changes_nothing(researcher, start):
    study = Study.objects.create(owner=researcher, name=f"s-{start}", kind="image_choice", state=start)
    for target in S.values:
        if target in TRANSITIONS[start]:
            continue
        with pytest.raises(IllegalTransition, match=f"from {start} to {target}"):
            study_transition(study=study, to=target)
        study.refresh_from_db()
        assert study.state == start


def test_unknown_state_is_refused(researcher):
    study = Study.objects.create(owner=researcher, name="s", kind="image_choice")
    with pytest.raises(IllegalTransition, match="unknown study state"):
        study_transition(study=study, to="published")


def test_stale_copy_cannot_move_a_study_another_request_moved(researcher):
    study = Study.objects.create(owner=researcher, name="s", kind="image_choice", state=S.LIVE)
    stale = Study.objects.get(pk=study.pk)
    study_transition(study=study, to=S.CLOSED)
    with pytest.raises(IllegalTransition, match="meanwhile"):
        study_transition(study=stale, to=S.CLOSED)
    assert Study.objects.get(pk=study.pk).state == S.CLOSED


def test_launch_from_draft_is_refused(researcher):
    study = services.study_create(owner=researcher, name="d", kind="image_choice")
    with pytest.raises(IllegalTransition):
        services.study_launch(study=study)
    assert Study.objects.get(pk=study.pk).state == S.DRAFT


def test_failed_evidence_job_returns_study_to_draft_with_the_error(researcher, django_capture_on_commit_callbacks):
    study = services.study_create(owner=researcher, name="bad", kind="image_choice", settings={"images": ["nope"]})
    with pytest.raises(KeyError, match="unknown sample image 'nope'"):
        with django_capture_on_commit_callbacks(execute=True):
            services.study_start_computing(study=study)
    study.refresh_from_db()
    assert study.state == S.DRAFT
    assert "unknown sample image" in study.error
    assert study.tasks.count() == 0
    job = study.jobs.get()
    assert job.state == job.State.FAILED and "nope" in job.error


def test_recomputing_never_duplicates_tasks_or_artifacts(make_study):
    from annotation.models import Artifact
    from annotation.services import study_start_computing

    study = make_study(live=False)
    keys = sorted(study.tasks.values_list("key", flat=True))
    n_artifacts = Artifact.objects.count()
    study_start_computing(study=study)  # ready -> computing again
    from workers.tasks import compute_study_evidence

    compute_study_evidence(study.jobs.order_by("-pk").first().pk)
    compute_study_evidence(study.jobs.order_by("-pk").first().pk)  # a redelivery of the same job
    study.refresh_from_db()
    assert study.state == S.READY
    assert sorted(study.tasks.values_list("key", flat=True)) == keys
    assert Artifact.objects.count() == n_artifacts
