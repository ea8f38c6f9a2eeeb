// The portal's proxy route to the hub (SunbirdEd-portal src/app/routes/, registered in server.js beside
// reportRoutes.js). The portal's browser holds no token: its Angular code calls /report-hub-api/v1/... with
// the session cookie, and this route sends the call to Kong with the user's token added by
// proxyUtils.decorateRequestHeaders (x-authenticated-user-token, X-Authenticated-Userid, X-Channel-Id,
// X-App-Id; Authorization becomes the portal's Kong key). Kong's `courseReportHub` entry
// (deploy/sunbird/kong/report-hub-apis.yml) passes it to the hub.
//
// Only calls that answer at once go this way (ticket, click, jobs, poll, dashboard): express-http-proxy
// buffers and does not upgrade, so the WebSocket or SSE stream goes straight to DIKSHA's nginx
// (deploy/sunbird/nginx/report-hub-locations.conf) with the single-use ticket got here:
//   POST /report-hub-api/v1/notifications/ticket?lang=hi   ->  {result: {ticket}}
//   new WebSocket(`wss://${host}/report-hub/v1/notifications/ws?ticket=${ticket}`)
const proxy = require('express-http-proxy');
const utils = require('../helpers/utils');
const proxyUtils = require('../proxy/proxyUtils.js');

const KONG_URL = utils?.defaultHost(utils?.envVariables?.sunbird_data_product_service); // http://kong:8000/
const PORTAL_PREFIX = '/report-hub-api/v1/';
const KONG_PREFIX = '/report-hub/v1/'; // course_report_hub_prefix + /v1

module.exports = function (app) {
  app.all(`${PORTAL_PREFIX}*`,
    proxyUtils.verifyToken(),
    proxy(KONG_URL, {
      limit: '1mb',
      proxyReqOptDecorator: proxyUtils.decorateRequestHeaders(KONG_URL),
      proxyReqPathResolver: (req) => req.originalUrl.replace(PORTAL_PREFIX, KONG_PREFIX),
      userResDecorator: (proxyRes, proxyResData, req, res) => {
        try {
          return proxyUtils.handleSessionExpiry(proxyRes, proxyResData, req, res, JSON.parse(proxyResData.toString('utf8')));
        } catch (err) {
          return proxyUtils.handleSessionExpiry(proxyRes, proxyResData, req, res);
        }
      }
    })
  );
};
