"""Intake endpoints: translate HTTP to the intake services and back; no decisions are made here."""
from __future__ import annotations

from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from crm.intake import config as intake_config
from crm.intake import services as intake

from .serializers import IntakeResponseSerializer, LeadInSerializer, MessageInSerializer

IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_IDEMPOTENCY_KEY = 255

IDEMPOTENCY_PARAMETER = OpenApiParameter(
    IDEMPOTENCY_HEADER,
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=False,
    description="A key unique to this request; a retry with the same key gets the first answer, never a second record.",
)
ERROR_RESPONSES = {
    400: OpenApiResponse(OpenApiTypes.OBJECT, description="Invalid data: each key names the bad field."),
    401: OpenApiResponse(OpenApiTypes.OBJECT, description="No or invalid integration token."),
    413: OpenApiResponse(OpenApiTypes.OBJECT, description="The body is larger than the limit."),
    422: OpenApiResponse(OpenApiTypes.OBJECT, description="The idempotency key was used with another body."),
}


class IntakeView(APIView):
    serializer_class = None
    service = None

    def post(self, request):
        token = request.auth
        key = request.headers.get(IDEMPOTENCY_HEADER, "").strip()
        if len(key) > MAX_IDEMPOTENCY_KEY:
            return Response(
                {IDEMPOTENCY_HEADER: [_("At most %(max)d characters.") % {"max": MAX_IDEMPOTENCY_KEY}]},
                status=status.HTTP_400_BAD_REQUEST,
            )
        payload = request.data
        try:
            # A retry is answered before validation: the pipeline it named may have changed since.
            replay = intake.stored_response(
                token=token, idempotency_key=key, body_hash=intake.body_fingerprint(payload)
            )
        except intake.IdempotencyConflict:
            return self._conflict()
        if replay is not None:
            return self._respond(replay)
        config = getattr(request.user, "config", None) or intake_config.current()
        serializer = self.serializer_class(
            data=payload, context={"token": token, "config": config, "request": request}
        )
        serializer.is_valid(raise_exception=True)
        try:
            result = type(self).service(
                token=token,
                incoming=serializer.validated_data,
                payload=payload,
                idempotency_key=key,
                config=config,
            )
        except intake.IdempotencyConflict:
            return self._conflict()
        return self._respond(result)

    @staticmethod
    def _respond(result: intake.IntakeResult) -> Response:
        response = Response(result.body, status=result.status_code)
        if result.replayed:
            response["Idempotent-Replayed"] = "true"
        return response

    @staticmethod
    def _conflict() -> Response:
        return Response(
            {IDEMPOTENCY_HEADER: [_("This key was already used with a different request body.")]},
            status=status.HTTP_422_UNPROCESSABLE_ENTITY,
        )


class LeadIntakeView(IntakeView):
    """Take an incoming lead from a web form, call tracker or any integration."""

    serializer_class = LeadInSerializer
    service = staticmethod(intake.lead_intake)

    @extend_schema(
        operation_id="leads_create",
        request=LeadInSerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={200: IntakeResponseSerializer, 201: IntakeResponseSerializer, **ERROR_RESPONSES},
        description="Check the lead against the base and create, update or flag records as the settings say.",
    )
    def post(self, request):
        return super().post(request)


class MessageIntakeView(IntakeView):
    """Take an incoming messenger message."""

    serializer_class = MessageInSerializer
    service = staticmethod(intake.message_intake)

    @extend_schema(
        operation_id="messages_create",
        request=MessageInSerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={200: IntakeResponseSerializer, 201: IntakeResponseSerializer, **ERROR_RESPONSES},
        description="Add the message to its chat's lead (a new chat makes a lead) and act on phones in its text.",
    )
    def post(self, request):
        return super().post(request)
