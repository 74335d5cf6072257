// The app: nothing to set up here. The chat client (chat-client-setup.js) logs in on first
// use and reads on an unfinished answer by itself when the app comes back (wx.onAppShow).
App({});
