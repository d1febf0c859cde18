from django.contrib.auth import views as auth_views
from django.urls import path

from accounts import views
from detection import views_webhooks

app_name = "accounts"

urlpatterns = [
    path("signup/", views.signup, name="signup"),
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("profile/", views.profile, name="profile"),
    path("tokens/", views.token_create, name="token_create"),
    path("tokens/<int:token_id>/revoke/", views.token_revoke, name="token_revoke"),
    path("webhooks/", views_webhooks.webhook_list, name="webhooks"),
    path("webhooks/<int:endpoint_id>/delete/", views_webhooks.webhook_delete, name="webhook_delete"),
    path("webhooks/<int:endpoint_id>/active/", views_webhooks.webhook_set_active, name="webhook_set_active"),
    path("webhooks/<int:endpoint_id>/test/", views_webhooks.webhook_test, name="webhook_test"),
    path("data/export/", views.data_export, name="data_export"),
    path("delete/", views.account_delete, name="account_delete"),
    path("password/change/", views.PasswordChangeView.as_view(), name="password_change"),
    path("sign-out-everywhere/", views.sign_out_everywhere, name="sign_out_everywhere"),
    path(
        "password/change/done/",
        auth_views.PasswordChangeDoneView.as_view(template_name="accounts/password_change_done.html"),
        name="password_change_done",
    ),
    path("password/reset/", views.PasswordResetView.as_view(), name="password_reset"),
    path(
        "password/reset/sent/",
        auth_views.PasswordResetDoneView.as_view(template_name="accounts/password_reset_done.html"),
        name="password_reset_done",
    ),
    path("password/reset/<uidb64>/<token>/", views.PasswordResetConfirmView.as_view(), name="password_reset_confirm"),
    path(
        "password/reset/complete/",
        auth_views.PasswordResetCompleteView.as_view(template_name="accounts/password_reset_complete.html"),
        name="password_reset_complete",
    ),
]
