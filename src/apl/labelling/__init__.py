"""People's side of the `web` oracle: the labelling page and the Label Studio / Argilla formats.

`app.py` serves one run's label queue (store/label_queue.py) as a page; `server.py` runs it on
uvicorn; `label_studio.py` and `argilla.py` write the open pairs in each tool's import format
and read each tool's export back as answers.
"""
