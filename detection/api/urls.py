from django.urls import path, re_path

from detection.api import batches, views, views_feedback

app_name = "api"

urlpatterns = [
    path("analyses/", views.AnalysisListCreateView.as_view(), name="analysis-list"),
    path("analyses/<uuid:public_id>/", views.AnalysisDetailView.as_view(), name="analysis-detail"),
    path("analyses/<uuid:public_id>/flag/", views_feedback.AnalysisFlagView.as_view(), name="analysis-flag"),
    path("analyses/<uuid:public_id>/images/<str:kind>/", views.AnalysisImageView.as_view(), name="analysis-image"),
    path(
        "analyses/<uuid:public_id>/faces/<int:number>/image/",
        views.AnalysisFaceImageView.as_view(),
        name="analysis-face-image",
    ),
    path(
        "analyses/<uuid:public_id>/images/frames/<int:number>/",
        views.AnalysisFrameImageView.as_view(),
        name="analysis-frame-image",
    ),
    path("batches/", batches.BatchListCreateView.as_view(), name="batch-list"),
    path("batches/<uuid:public_id>/", batches.BatchDetailView.as_view(), name="batch-detail"),
    path("batches/<uuid:public_id>/export.csv", batches.BatchExportView.as_view(), name="batch-export"),
    path("models/", views.DetectorModelListView.as_view(), name="model-list"),
    path("models/active/", views.ActiveDetectorModelView.as_view(), name="model-active"),
    re_path(r"^.*$", views.api_not_found),
]
