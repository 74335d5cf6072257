// The one setting a developer changes: where the server is (README, Mini-program).
// In DevTools with "不校验合法域名" ticked, http://127.0.0.1:8000 works against `make run`;
// on a phone it must be an https domain listed as a request and business domain.
module.exports = {
  serverUrl: 'http://127.0.0.1:8000',
  // The H5 chat page on that server, opened in <web-view>.
  h5Path: '/h5/',
};
