import tempfile

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login, logout
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import FileResponse, Http404
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import selectors, services
from accounts.forms import AccountDeleteForm, ApiTokenForm, SignUpForm
from accounts.models import ApiToken
from detection.selectors import analysis_list


def signup(request):
    if request.user.is_authenticated:
        return redirect(settings.LOGIN_REDIRECT_URL)
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = services.user_create(
            username=form.cleaned_data["username"],
            email=form.cleaned_data["email"],
            password=form.cleaned_data["password1"],
        )
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(request, f"Welcome, {user.username}! Your account is ready.")
        return redirect(settings.LOGIN_REDIRECT_URL)
    status = 400 if request.method == "POST" else 200
    return render(request, "accounts/signup.html", {"form": form}, status=status)


class FormErrorsAre400:
    """Forms with errors answer 400, as every form of the site does."""

    def form_invalid(self, form):
        return self.render_to_response(self.get_context_data(form=form), status=400)


class LoginView(FormErrorsAre400, auth_views.LoginView):
    template_name = "accounts/login.html"
    redirect_authenticated_user = True


class PasswordChangeView(FormErrorsAre400, auth_views.PasswordChangeView):
    """A password change signs the user out of every other session (Django) and revokes every API token
    (accounts.models.User.save)."""

    template_name = "accounts/password_change.html"
    success_url = reverse_lazy("accounts:password_change_done")


class PasswordResetConfirmView(FormErrorsAre400, auth_views.PasswordResetConfirmView):
    template_name = "accounts/password_reset_confirm.html"
    success_url = reverse_lazy("accounts:password_reset_complete")


class PasswordResetView(FormErrorsAre400, auth_views.PasswordResetView):
    """Asking for a reset link is limited per address and per e-mail (PASSWORD_RESET_RATE), so the form cannot be
    used to flood someone's mailbox."""

    template_name = "accounts/password_reset.html"
    email_template_name = "accounts/password_reset_email.txt"
    subject_template_name = "accounts/password_reset_subject.txt"
    success_url = reverse_lazy("accounts:password_reset_done")

    def form_valid(self, form):
        if services.password_reset_limited(request=self.request, email=form.cleaned_data["email"]):
            form.add_error(
                None,
                "Too many password reset e-mails were asked for, from here or for this address. The links already "
                "sent stay valid; please wait an hour before asking again.",
            )
            return self.render_to_response(self.get_context_data(form=form), status=429)
        return super().form_valid(form)


@login_required
@require_POST
def sign_out_everywhere(request):
    request.user.sign_out_everywhere()
    logout(request)
    messages.success(
        request, "You are signed out on every device, and all your API tokens are revoked. Sign in again here."
    )
    return redirect("accounts:login")


@login_required
def profile(request):
    return render(
        request,
        "accounts/profile.html",
        {"tokens": selectors.api_token_list(user=request.user), "token_form": ApiTokenForm()},
    )


@login_required
@require_POST
def token_create(request):
    form = ApiTokenForm(request.POST)
    context = {"token_form": form}
    status = 200
    if form.is_valid():
        try:
            token, raw_token = services.api_token_create(user=request.user, name=form.cleaned_data["name"])
        except ValidationError as exc:
            form.add_error("name", exc.message_dict["name"])
            status = 400
        else:
            context.update(new_token=token, raw_token=raw_token, token_form=ApiTokenForm())
    else:
        status = 400
    context["tokens"] = selectors.api_token_list(user=request.user)
    template = "accounts/_tokens.html" if request.htmx else "accounts/profile.html"
    return render(request, template, context, status=status)


@login_required
@require_POST
def token_revoke(request, token_id: int):
    try:
        token = services.api_token_revoke(user=request.user, token_id=token_id)
    except ApiToken.DoesNotExist:
        raise Http404("No such token.") from None
    context = {
        "tokens": selectors.api_token_list(user=request.user),
        "token_form": ApiTokenForm(),
        "notice": f"Token “{token.name}” is revoked; requests using it are now refused.",
    }
    if request.htmx:
        return render(request, "accounts/_tokens.html", context)
    messages.success(request, context["notice"])
    return redirect("accounts:profile")


@login_required
@require_GET
def data_export(request):
    """Everything stored about the user, as a ZIP of JSON and pictures ("download all my data")."""
    # Pictures can add up to more than is reasonable to hold in memory: past 32 MB the archive goes to disk.
    archive = tempfile.SpooledTemporaryFile(max_size=32 * 1024 * 1024)  # noqa: SIM115 (FileResponse closes it)
    try:
        services.user_data_export(user=request.user, out=archive)
    except services.AccountStorageError as exc:
        archive.close()
        return render(request, "accounts/data_unavailable.html", {"message": str(exc)}, status=503)
    archive.seek(0)
    filename = f"{request.user.username}-data-{timezone.now():%Y-%m-%d}.zip"
    return FileResponse(archive, as_attachment=True, filename=filename, content_type="application/zip")


@login_required
@require_http_methods(["GET", "POST"])
def account_delete(request):
    form = AccountDeleteForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        user = request.user
        username = user.username
        try:
            services.user_delete(user=user)
        except services.AccountStorageError as exc:
            return render(request, "accounts/data_unavailable.html", {"message": str(exc)}, status=503)
        logout(request)
        messages.success(request, f"The account “{username}”, its analyses and all their pictures are deleted.")
        return redirect("home")
    status = 400 if request.method == "POST" else 200
    context = {"form": form, "analyses": analysis_list(user=request.user).count()}
    return render(request, "accounts/account_delete.html", context, status=status)
