// What the page says for each status and error code (docs/protocol.md §5, §6).

const STATUS = {
  stopped: '已停止',
  interrupted: '回答中断',
  error: '回答出错',
};

const ERRORS = {
  network: '网络不通，请检查网络后重试',
  question_required: '请输入问题',
  question_too_long: '问题太长了，请精简后再发',
  rate_limited: '提问太频繁，请稍后再试',
  server_draining: '服务正在重启，请稍后再试',
  session_not_found: '这个会话已不存在',
  invalid_token: '登录已失效，请重新进入',
  not_authenticated: '请先登录',
  wechat_login_failed: '微信登录失败，请重试',
  upstream_timeout: '模型响应超时',
  upstream_unavailable: '模型暂时不可用',
  upstream_error: '模型出错了',
  upstream_incomplete: '回答不完整',
  content_blocked: '内容未通过审核',
  storage_error: '回答未能保存',
  server_lost: '服务中断',
  internal_error: '服务出错了',
  record_not_rateable: '这条回答不能评价',
};

function errorText(code) {
  return ERRORS[code] || `出错了（${code || '未知'}）`;
}

function statusText(status, errorCode) {
  if (status === 'error' || (status === 'interrupted' && errorCode)) {
    return `${STATUS[status]}：${errorText(errorCode)}`;
  }
  return STATUS[status] || '';
}

module.exports = { errorText, statusText };
