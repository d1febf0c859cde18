from django.urls import path

from detection import views, views_feedback

app_name = "detection"

urlpatterns = [
    path("analyses/", views.analysis_history, name="history"),
    path("analyses/new/", views.analysis_upload, name="upload"),
    path("analyses/export.csv", views.analysis_history_csv, name="history_csv"),
    path("analyses/delete/", views.analysis_bulk_delete, name="bulk_delete"),
    path("analyses/<uuid:public_id>/", views.analysis_detail, name="analysis_detail"),
    path("analyses/<uuid:public_id>/status/", views.analysis_status, name="analysis_status"),
    path("analyses/<uuid:public_id>/image/<slug:kind>/", views.analysis_image, name="analysis_image"),
    path("analyses/<uuid:public_id>/faces/<int:number>/image/", views.analysis_face_image, name="analysis_face_image"),
    path("analyses/<uuid:public_id>/frames/<int:number>/", views.analysis_frame, name="analysis_frame"),
    path(
        "analyses/<uuid:public_id>/frames/<int:number>/image/", views.analysis_frame_image, name="analysis_frame_image"
    ),
    path("analyses/<uuid:public_id>/json/", views.analysis_json, name="analysis_json"),
    path("analyses/<uuid:public_id>/delete/", views.analysis_delete, name="analysis_delete"),
    path("analyses/<uuid:public_id>/flag/", views_feedback.analysis_flag, name="analysis_flag"),
]
