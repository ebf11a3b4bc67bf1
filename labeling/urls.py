from django.urls import path

from labeling import views

urlpatterns = [
    path("", views.labeling_home, name="home"),
    path("projects/<slug:slug>/label/", views.labeling_compare, name="labeling-compare"),
    path("projects/<slug:slug>/label/submit/", views.labeling_submit, name="labeling-submit"),
    path("projects/<slug:slug>/instructions/ack/", views.labeling_instructions_ack, name="labeling-instructions-ack"),
]
