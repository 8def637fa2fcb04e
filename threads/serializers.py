"""Shapes of threads and messages (SPEC §3)."""
from rest_framework import serializers

from arkloop.api import StrictSerializer, utf8_bytes_validator
from threads.models import Message, Thread

MAX_CONTENT_BYTES = 32768


class ThreadWriteSerializer(StrictSerializer):
    title = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class ThreadPatchSerializer(StrictSerializer):
    title = serializers.CharField(max_length=500, allow_blank=True, required=False)


class ThreadSerializer(serializers.ModelSerializer):
    org_id = serializers.CharField(read_only=True)
    created_by_user_id = serializers.CharField(source="created_by_id", read_only=True)
    active_run_id = serializers.CharField(read_only=True, allow_null=True)

    class Meta:
        model = Thread
        fields = ["id", "org_id", "title", "created_by_user_id", "created_at", "updated_at", "active_run_id"]


class MessageWriteSerializer(StrictSerializer):
    content = serializers.CharField(trim_whitespace=False, min_length=1,
                                    validators=[utf8_bytes_validator(max_bytes=MAX_CONTENT_BYTES)])


class MessageSerializer(serializers.ModelSerializer):
    thread_id = serializers.CharField(read_only=True)
    run_id = serializers.CharField(read_only=True, allow_null=True)

    class Meta:
        model = Message
        fields = ["id", "thread_id", "role", "content", "run_id", "created_at"]
