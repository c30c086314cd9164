"""`llmwatch relay`: Alertmanager webhook in, one markdown message per notification out to DingTalk, WeCom, Feishu."""
