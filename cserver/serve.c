/* Serving one request whose head is parsed: the part every worker class
 * shares (serve.c).  Runs with the GIL, in whichever thread or greenlet
 * serves the connection. */
#include "serve.h"

#include "connio.h"
#include "environ.h"
#include "heartbeat.h"
#include "input.h"
#include "response.h"

#include <sys/socket.h>
#include <time.h>

int
cn_serve_head_result(cn_worker *w, cn_conn *c, int r)
{
    (void)w;
    if (r == 1) {
        return 1;
    }
    if (r == -1) {
        cn_send_error(c, c->error_status, c->error_reason);
        return -1;
    }
    return 0;
}

int
cn_serve_request(cn_worker *w, cn_conn *c)
{
    if (c->has_proxy) {
        if (!cn_ip_allowed(&w->proxy_allow, c)) {
            cn_send_error(c, 403, "Forbidden: PROXY header from an untrusted peer");
            return -1;
        }
    }
    if (cn_request_scheme(w, c) < 0) {
        cn_send_error(c, 400, "Contradictory scheme headers");
        return -1;
    }
    if (cn_request_forwarded(w, c) < 0) {
        cn_send_error(c, 400, "Invalid header name: underscore");
        return -1;
    }
    char problem[512];
    if (cn_request_script(w, c, problem, sizeof(problem))) {
        char line[600];
        snprintf(line, sizeof(line), "Invalid request from ip=%s: %s", c->peer_ip, problem);
        cn_worker_log(w, "warning", line, 0);
        cn_send_error(c, 500, problem);
        return -1;
    }
    w->requests++;

    PyObject *input = cn_input_new(w, c);
    PyObject *sr = input ? cn_response_new(w, c) : NULL;
    PyObject *env = sr ? cn_environ_build(w, c, input) : NULL;
    if (env == NULL) {
        cn_worker_log(w, "error", "Error building the request environ", 1);
        cn_send_error(c, 500, "Internal Server Error");
        if (sr != NULL) {
            cn_response_detach(sr);
        }
        if (input != NULL) {
            cn_input_detach(input);
        }
        Py_XDECREF(sr);
        Py_XDECREF(input);
        return -1;
    }

    struct timespec ts0;
    clock_gettime(CLOCK_MONOTONIC, &ts0);
    PyObject *args[2] = {env, sr};
    cn_worker_set_in_app(1);
    PyObject *result = PyObject_Vectorcall(w->app, args, 2, NULL);
    if (c->upgrade && w->coop_wait == NULL) {
        cn_conn_nonblocking(c); /* should the app have made its socket blocking */
    }
    int rc, taken = 0;
    if (result == NULL && PyErr_ExceptionMatches(PyExc_StopIteration)) {
        /* gunicorn's "close the connection": how an app that took the
         * socket over (gunicorn.socket, a WebSocket) says it is done */
        PyErr_Clear();
        cn_worker_log(w, "debug", "Closing connection.", 0);
        taken = 1;
        rc = 0;
    }
    else if (result == NULL) {
        rc = cn_response_fail(sr);
    }
    else {
        rc = cn_response_finish(sr, result);
        Py_DECREF(result);
    }
    cn_worker_set_in_app(0);

    if (!taken && w->access_log != NULL && w->access_log != Py_None) {
        struct timespec ts1;
        clock_gettime(CLOCK_MONOTONIC, &ts1);
        double secs = (double)(ts1.tv_sec - ts0.tv_sec) + (ts1.tv_nsec - ts0.tv_nsec) / 1e9;
        PyObject *status = cn_response_status(sr);
        PyObject *headers = cn_response_headers(sr);
        PyObject *res = PyObject_CallFunction(
            w->access_log, "OOOLd", env, status ? status : Py_None,
            headers ? headers : Py_None, (long long)cn_response_sent(sr), secs);
        if (res == NULL) {
            PyErr_WriteUnraisable(w->access_log);
        }
        Py_XDECREF(res);
    }
    cn_response_detach(sr);
    cn_input_detach(input);
    Py_DECREF(sr);
    Py_DECREF(input);
    Py_DECREF(env);

    if (taken) {
        /* nothing more is ours to send or read: the app's copy of the
         * socket sees the end too (a thread of it blocked in recv) */
        shutdown(c->fd, SHUT_RDWR);
        c->must_close = 1;
        return 0;
    }
    if (rc < 0) {
        return -1;
    }
    if (!c->keepalive || c->must_close) {
        /* Unread request bytes would turn close() into a reset that can
         * destroy the response in flight: the caller lingers. */
        return (!c->body_done || c->pos < c->len) ? -1 : 0;
    }
    return 1;
}
