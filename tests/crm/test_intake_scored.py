"""The intake asks the duplicate engine's one decision (dedup/engine/decide.py): with a learned lead model, a
lead that shares no phone or email but is the same person (a first-name variant at the same company in another
legal form) is matched, not created again."""
import pytest

from crm.models import IncomingRequest, Lead, Stage
from dedup.engine.scoring import store
from dedup.engine.scoring.learned import learned_cache_clear
from tests import factories
from tests.dedup.scored_helpers import customer_model

LEADS = "/api/leads/"

pytestmark = pytest.mark.usefixtures("rules_and_fresh_scorer")



def _open_lead(pipeline, **fields):
    stage = Stage.objects.get(pipeline=pipeline, name="New")
    return factories.LeadFactory(stage=stage, pipeline=pipeline, **fields)


def _post(intake_client, name, company):
    return intake_client.post(LEADS, {"name": name, "company": company, "source": "landing"}, format="json")


def test_a_name_variant_at_the_same_company_is_matched_once_a_lead_model_is_learned(intake_client, lead_pipeline):
    # Given an open lead "Micheal Smith, Acme LLC" with no phone or email
    existing = _open_lead(lead_pipeline, first_name="Micheal", last_name="Smith", company_name="Acme LLC")

    # When no model is learned, the same person posted as "Michael Smith, Acme Inc" is a new lead (contacts only)
    first = _post(intake_client, "Michael Smith", "Acme Inc")
    assert first.status_code == 201, first.content
    Lead.objects.filter(pk=first.json()["lead"]).delete()

    # When the leads' model is learned, the same request is matched with the existing lead, with why
    store.scoring_model_save(entity="lead", model=customer_model(), records=100)
    learned_cache_clear()
    second = _post(intake_client, "Michael Smith", "Acme Inc")
    assert second.status_code == 200, second.content
    assert second.json()["lead"] == existing.pk
    request = IncomingRequest.objects.order_by("-pk").first()
    assert "% match" in request.reason


def test_a_stranger_at_the_same_company_is_still_a_new_lead(intake_client, lead_pipeline):
    _open_lead(lead_pipeline, first_name="Micheal", last_name="Smith", company_name="Acme LLC")
    store.scoring_model_save(entity="lead", model=customer_model(), records=100)
    response = _post(intake_client, "John Brown", "Acme Inc")
    assert response.status_code == 201, response.content
    assert response.json()["decision"] == "created"


def test_a_phone_the_pipeline_does_not_match_by_carries_no_weight_in_the_score(intake_client, lead_pipeline):
    # Given an open lead "Micheal Smith" on an office line two colleagues share (so no rule matches by it), and
    # the leads' model learned
    from crm.models import IntakeSettings

    existing = _open_lead(lead_pipeline, first_name="Micheal", last_name="Smith", company_name="")
    factories.PhoneFactory(content_object=existing, number="+1 415 555 0100")
    for first, last in (("Olga", "Brown"), ("Pablo", "Garcia")):
        colleague = _open_lead(lead_pipeline, first_name=first, last_name=last, company_name="")
        factories.PhoneFactory(content_object=colleague, number="+1 415 555 0100")
    store.scoring_model_save(entity="lead", model=customer_model(), records=100)
    learned_cache_clear()
    IntakeSettings.objects.update_or_create(pipeline=lead_pipeline, defaults={"match_phone": False})

    # When "Michael Smith" writes from that line to a pipeline that does not match by phone
    response = intake_client.post(
        LEADS, {"name": "Michael Smith", "phones": ["+14155550100"], "source": "landing"}, format="json"
    )

    # Then the phone is no evidence for the learned model either: a name variant alone makes a new lead
    assert response.status_code == 201, response.content
    assert response.json()["lead"] != existing.pk
