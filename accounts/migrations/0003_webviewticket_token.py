import django.db.models.deletion
from django.db import migrations, models


def tickets_delete(apps, schema_editor):
    # Tickets live a minute; any left from before cannot say which token asked for them.
    apps.get_model("accounts", "WebviewTicket").objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_user_wechat_session_key_webviewticket"),
    ]

    operations = [
        migrations.RunPython(tickets_delete, migrations.RunPython.noop),
        migrations.AddField(
            model_name="webviewticket",
            name="token",
            field=models.ForeignKey(
                default=0,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="webview_tickets",
                to="accounts.accesstoken",
            ),
            preserve_default=False,
        ),
    ]
