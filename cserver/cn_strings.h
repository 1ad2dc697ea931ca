/* Interned Python strings kept in the module state: environ keys and the few
 * constant values.  X(name, "text"). */
#ifndef CN_CN_STRINGS_H
#define CN_CN_STRINGS_H

#define CN_STRINGS(X)                                   \
    X(REQUEST_METHOD, "REQUEST_METHOD")                 \
    X(SCRIPT_NAME, "SCRIPT_NAME")                       \
    X(PATH_INFO, "PATH_INFO")                           \
    X(QUERY_STRING, "QUERY_STRING")                     \
    X(RAW_URI, "RAW_URI")                               \
    X(SERVER_PROTOCOL, "SERVER_PROTOCOL")               \
    X(SERVER_NAME, "SERVER_NAME")                       \
    X(SERVER_PORT, "SERVER_PORT")                       \
    X(REMOTE_ADDR, "REMOTE_ADDR")                       \
    X(REMOTE_PORT, "REMOTE_PORT")                       \
    X(CONTENT_TYPE, "CONTENT_TYPE")                     \
    X(CONTENT_LENGTH, "CONTENT_LENGTH")                 \
    X(HTTP_HOST, "HTTP_HOST")                           \
    X(wsgi_input, "wsgi.input")                         \
    X(wsgi_url_scheme, "wsgi.url_scheme")               \
    X(wsgi_input_terminated, "wsgi.input_terminated")   \
    X(http, "http")                                     \
    X(empty, "")                                        \
    X(HTTP_1_0, "HTTP/1.0")                             \
    X(HTTP_1_1, "HTTP/1.1")                             \
    X(GET, "GET")                                       \
    X(POST, "POST")                                     \
    X(HEAD, "HEAD")                                     \
    X(close, "close")                                   \
    X(read, "read")                                     \
    X(fileno, "fileno")

enum {
#define CN_X(name, text) CN_STR_##name,
    CN_STRINGS(CN_X)
#undef CN_X
    CN_STR__COUNT
};

#endif
