-- wrk script: POST /tasks with the flat echo_add body.
wrk.method = "POST"
wrk.body = '{"text": "hello", "a": 2, "b": 3}'
wrk.headers["Content-Type"] = "application/json"
