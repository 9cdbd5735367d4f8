"""Token authentication for integrations: `Authorization: Token <key>`, one token per integration."""
from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header


class IntegrationPrincipal:
    """The authenticated party of an intake request: an integration, not a person."""

    is_authenticated = True
    is_anonymous = False

    def __init__(self, token, config=None):
        self.token = token
        # The intake configuration read with the token (crm.intake.config): the view and serializers use it.
        self.config = config
        self.pk = None

    def __str__(self):
        return str(self.token)


class IntegrationTokenAuthentication(BaseAuthentication):
    keyword = "Token"

    def authenticate(self, request):
        header = get_authorization_header(request).split()
        if not header or header[0].lower() not in (b"token", b"bearer"):
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(_("Invalid token header: give the token after 'Token '."))
        try:
            raw = header[1].decode("ascii")
        except UnicodeError:
            raise exceptions.AuthenticationFailed(_("Invalid token header: the token contains invalid characters."))
        from crm.intake import config as intake_config

        found = intake_config.authenticate(raw)
        if found is None:
            raise exceptions.AuthenticationFailed(_("Invalid or revoked token."))
        token, config = found
        return IntegrationPrincipal(token, config), token

    def authenticate_header(self, request):
        return self.keyword


class IntegrationTokenScheme(OpenApiAuthenticationExtension):
    """Describe the token scheme in the OpenAPI schema."""

    target_class = IntegrationTokenAuthentication
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": _("The integration's token, created in the admin, as “Token <secret>”."),
        }
