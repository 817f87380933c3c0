"""What went wrong with a recording or a job, said for the night shift in Chinese. The technical text is
kept beside it (operators read that); staff read what it means for the caller's message and what to do."""

from __future__ import annotations

# (a piece of the technical message, what staff are told), first match wins.
EXPLANATIONS: tuple[tuple[str, str], ...] = (
    ("speech model not found", "未安装语音模型,留言未能自动转写;请人工收听并记录"),
    ("IVR_MAX_RECORDING_BYTES", "录音文件超过允许的大小,未保存;请管理员处理"),
    ("IVR_RECORDING_HOSTS", "录音地址不在允许的下载主机中,未下载;请管理员检查设置"),
    ("Twilio's format", "录音编号格式不正确,已拒绝保存;请管理员检查"),
    ("recording URL", "录音地址不安全,已拒绝下载;请管理员检查"),
    ("redirects", "录音地址多次跳转,已拒绝下载;请管理员检查"),
    ("gave up after", "多次尝试后仍未完成,已停止;管理员可运行 ivr jobs retry 重试"),
    ("Twilio reported the recording", "Twilio 报告这段录音为空或录制失败"),
    ("gave no RecordingUrl", "Twilio 未提供录音地址,无法下载"),
    ("could not reach", "暂时连不上 Twilio,录音稍后会自动重新下载"),
    ("truncated download", "录音下载中断,稍后会自动重新下载"),
    ("empty body", "Twilio 返回了空的录音,稍后会自动重新下载"),
    ("HTTP ", "暂时无法从 Twilio 取得录音,稍后会自动重新下载"),
    ("not stored", "录音尚未保存,暂不能转写"),
    ("decode", "录音文件无法解码;请人工收听"),
)
UNKNOWN = "处理失败;请管理员查看技术信息"


def in_chinese(technical: str | None) -> str:
    """The staff-facing sentence for a technical error message ('' when there is none)."""
    if not technical:
        return ""
    for piece, explanation in EXPLANATIONS:
        if piece in technical:
            return explanation
    return UNKNOWN
