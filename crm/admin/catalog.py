"""Admin of the CRM's reference data: pipelines with their stages, and tags."""
from django.contrib import admin
from django.db.models import Count
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from ..models import Pipeline, Stage, Tag
from .inlines import StageInline


@admin.register(Pipeline)
class PipelineAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "sort_order", "stage_count"]
    list_filter = ["kind"]
    search_fields = ["name"]
    inlines = [StageInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(stage_count=Count("stages"))

    @admin.display(description=_("stages"), ordering="stage_count")
    def stage_count(self, pipeline):
        return pipeline.stage_count


@admin.register(Stage)
class StageAdmin(admin.ModelAdmin):
    list_display = ["name", "pipeline", "semantic", "sort_order"]
    list_select_related = ["pipeline"]
    list_filter = ["pipeline__kind", "semantic", "pipeline"]
    search_fields = ["name", "pipeline__name"]
    ordering = ["pipeline__kind", "pipeline__sort_order", "pipeline", "sort_order", "id"]


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    list_display = ["name", "swatch"]
    search_fields = ["name"]

    @admin.display(description=_("colour"))
    def swatch(self, tag):
        # The tag's own colour on a chip framed with the admin's border colour, readable in both themes.
        return format_html(
            '<span style="display:inline-block;width:1.2em;height:1.2em;vertical-align:middle;border-radius:3px;'
            'border:1px solid var(--border-color);background:{}"></span> <code>{}</code>',
            tag.color,
            tag.color,
        )
