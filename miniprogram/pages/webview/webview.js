// The H5 chat page in a <web-view>, opened with a fresh single-use ticket (never the token
// or the openid in its address). WeChat hands the page's posts over on back, share or
// destroy, as the list of every post so far: they are saved with POST
// /api/chat/records/bulk (docs/api.md, the web-view handoff).

const { chatClient, config } = require('../../chat-client-setup.js');

Component({
  data: { src: '', error: '' },
  methods: {
    async onLoad() {
      this.setData({ error: '' });
      try {
        this.setData({ src: await chatClient().webviewUrl({ h5Path: config.h5Path }) });
      } catch (error) {
        this.setData({ error: '打不开网页版，请检查网络' });
      }
    },
    onMessage(event) {
      chatClient()
        .saveHandoff(event.detail.data)
        .catch(() => {
          // Sent again with the next post: saving is an upsert (docs/api.md).
        });
    },
  },
});
