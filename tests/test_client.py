"""``salient_studio.client.Studio`` drives a whole study against the live server (pytest-django ``live_server``)."""
from __future__ import annotations

import io
import subprocess
import sys
import zipfile

import pytest

from annotation.models import Study
from annotation.services.api_tokens import token_create
from tests.conftest import SMALL_IMAGES
from tests.study_helpers import crowd_answers


def test_client_imports_no_django():
    code = "import sys, salient_studio.client; assert not any(m.startswith('django') for m in sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.django_db(transaction=True)
def test_a_study_start_to_finish_through_the_client(live_server, researcher, make_worker):
    from crowdkit.aggregation import MajorityVote

    from salient_studio.client import Studio, StudioError

    _, secret = token_create(user=researcher)
    studio = Studio(live_server.url, secret)
    with pytest.raises(StudioError) as bad:
        studio.create("Subjects", "image_choice", settings={"image_size": 8})
    assert bad.value.status == 400 and bad.value.field == "settings.image_size"

    study = studio.create("Subjects", "image_choice", settings={"images": SMALL_IMAGES, "image_size": 48},
                          workers_per_task=3)
    studio.compute(study)
    assert studio.wait(study, "ready", timeout=60, poll=0.2)["wanted"] == 9
    studio.launch(study)
    with pytest.raises(StudioError, match="waited"):
        studio.wait(study, "answered", timeout=0.3, poll=0.1)
    crowd_answers(Study.objects.get(pk=study["id"]), make_worker, n=3, accuracy=1.0)
    assert studio.wait(study, "answered", timeout=10, poll=0.1)["received"] == 9

    answers = studio.answers(study)
    assert list(answers.columns[:3]) == ["task", "worker", "label"] and len(answers) == 9
    assert {"choice", "reason", "confidence", "status"} <= set(answers.columns)
    studio.reject(int(answers.iloc[0]["assignment"]))
    assert studio.answers(study, status="rejected")["assignment"].tolist() == [answers.iloc[0]["assignment"]]

    studio.close(study)
    assert studio.aggregate(study)["state"] == "aggregated"  # the client waits for the aggregation job
    assert studio.jobs(study)["name"].tolist()[:1] == ["aggregate"]
    labels = studio.labels(study).set_index("task")
    accepted = studio.answers(study, status="approved")
    crowd = MajorityVote().fit_predict(accepted[["task", "worker", "label"]])
    assert crowd.to_dict() == labels["label"].to_dict()  # crowd-kit reads the answers table as it is
    assert studio.studies()["name"].tolist() == ["Subjects"]
    assert "study%d/answers.csv" % study["id"] in zipfile.ZipFile(io.BytesIO(studio.archive(study))).namelist()
    with pytest.raises(StudioError) as missing:
        studio.study(study["id"] + 1000)
    assert missing.value.status == 404
    studio.session.close()  # no kept-alive connection holds the live server's database session
